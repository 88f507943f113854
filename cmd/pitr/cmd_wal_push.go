package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/wal"
	"github.com/pitr-dev/pitr/wal/archive"
)

func newWALPushCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "wal-push PATH",
		Short: "Archive one WAL file (archive_command = 'pitr wal-push %p')",
		Long: `Archive one WAL file. Exits 0 only once the file is durably stored and the
store confirmed its checksum. Looks ahead at other .ready files and uploads
them in parallel (push_concurrency), so later calls return at once. Gives up
after retry_timeout in all, so that a stalled store cannot hold up the
archiver; removes what killed calls left in the spool first.
When pitr daemon runs, hands the file to it over its socket (socket) first:
the daemon pushes it on its warm connection and answers once it is stored.
Without one, the first call starts a resident pusher in the spool
(push_resident), which serves the later calls the same way and exits 20 s
idle or with the archiver.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error { return runWALPush(c.Context(), e, args[0]) },
	}
}

func runWALPush(ctx context.Context, e *env, path string) error {
	ctx, cancel := e.walDeadline(ctx, "wal-push")
	defer cancel()
	if _, err := wal.ParseName(baseName(path)); err != nil {
		return fmt.Errorf("%w: wal-push: %v", errUsage, err)
	}
	// The daemon first, before the store client is built: that setup (and
	// the TLS handshake after it) is most of an in-process call's cost.
	if e.cfg.Socket != "off" && e.cfg.Repo != "" {
		if done, _, err := e.viaSocket(ctx, e.cfg.Socket, path, "", "daemon"); done {
			return err
		}
	}
	spool := e.cfg.SpoolDir
	if spool == "" {
		spool = filepath.Join(filepath.Dir(path), "pitr")
	}
	// Then the resident pusher an earlier call started in the spool.
	start := false
	if (e.cfg.PushResident == nil || *e.cfg.PushResident) && e.cfg.Repo != "" {
		if sock := archive.ResidentSocket(spool); sock != "" {
			done, noListener, err := e.viaSocket(ctx, sock, path, e.pushFingerprint(), "resident pusher")
			if done {
				return err
			}
			start = noListener
		}
	}
	// A process that pushes one segment would send Content-MD5 with it
	// every time: what the first call learned about the store is kept in
	// the spool (see s3.Options.CRC32CCache).
	e.crcCache = filepath.Join(spool, "s3-checks-crc32c")
	concurrency := e.cfg.PushConcurrency
	if start {
		// The pusher for the next calls sets up while this one pushes in
		// process, alone: the pusher looks ahead at the other .ready files
		// once the next call comes, and this call returns sooner.
		if serr := e.startResidentPusher(spool); serr != nil {
			e.log.Debug().Err(serr).Msg("no resident pusher started")
		} else {
			concurrency = 1
		}
	}
	r, err := e.WritableRepo(ctx)
	if err != nil {
		return err
	}
	_, err = archive.Push(ctx, path, archive.PushOptions{
		Store: r.Store(), Codec: r.Codec(), SpoolDir: e.cfg.SpoolDir, Concurrency: concurrency,
		RepoID: e.cfg.Repo, Version: version,
	})
	return deadlineErr(ctx, err)
}

// viaSocket hands path to the server on sock: the daemon, or with a
// fingerprint the resident pusher. done is true when the call is over,
// stored (err nil) or failed there (an in-process push would fail alike);
// otherwise the caller pushes in-process, and noListener says that
// nothing listened on sock.
func (e *env) viaSocket(ctx context.Context, sock, path, fingerprint, via string) (done, noListener bool, err error) {
	start := time.Now()
	res, err := archive.PushViaSocketWith(ctx, sock, path, e.cfg.Repo, fingerprint)
	if err == nil {
		e.log.Info().Str("segment", res.Name).Str("via", via).Bool("existed", res.Existed).Bool("acked", res.Acked).
			Int64("stored", res.Stored).Dur("took", time.Since(start).Round(time.Microsecond)).Msg("wal pushed")
		return true, false, nil
	}
	if !errors.Is(err, archive.ErrNoDaemon) {
		return true, false, deadlineErr(ctx, fmt.Errorf("wal-push %s: %w", baseName(path), err))
	}
	e.log.Debug().Err(err).Str("socket", sock).Msg("pushing in-process")
	return false, errors.Is(err, archive.ErrNoListener), nil
}

// startResidentPusher runs `pitr wal-push-serve` detached, in its own
// session, with this call's settings; it lives as long as the process
// that ran archive_command, and no longer than archive.ResidentIdle idle.
func (e *env) startResidentPusher(spool string) error {
	if abs, err := filepath.Abs(spool); err == nil {
		spool = abs // archive_command's %p is relative to the data directory
	}
	return e.startDetached("wal-push-serve", spool, strconv.Itoa(restoreCommandCaller()))
}

// pushFingerprint names the settings a push depends on: every setting
// that differs from its default (secrets excepted), and the config and
// recipients files as they are now. A resident pusher started with other
// settings refuses the call and ends.
func (e *env) pushFingerprint() string {
	h := sha256.New()
	changed := e.cfg.Changed()
	keys := slices.Sorted(maps.Keys(changed))
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%q\n", k, changed[k])
	}
	for _, f := range []string{e.configFile, e.cfg.AgeRecipientsFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(h, "file %q %d %d\n", f, fi.Size(), fi.ModTime().UnixNano())
		} else {
			fmt.Fprintf(h, "file %q missing\n", f)
		}
	}
	fmt.Fprintf(h, "version %s\n", version)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func newWALPushServeCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "wal-push-serve SPOOL [PID]",
		Short:  "Serve wal-push calls on SPOOL/push.sock until idle (started by wal-push)",
		Hidden: true,
		Args:   usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(c *cobra.Command, args []string) error {
			var alive func() bool
			if len(args) == 2 {
				var err error
				if alive, err = processAlive(args[1]); err != nil {
					return err
				}
			}
			return runWALPushServe(c.Context(), e, args[0], alive)
		},
	}
}

func runWALPushServe(ctx context.Context, e *env, spool string, alive func() bool) error {
	residentGC()
	sock := archive.ResidentSocket(spool)
	if sock == "" || e.cfg.Repo == "" {
		return fmt.Errorf("%w: wal-push-serve: no socket path in %s, or no repository", errUsage, spool)
	}
	lock, ok, err := archive.LockResident(spool)
	if err != nil || !ok {
		return err // another one serves
	}
	defer lock.Close()
	if lf, err := openPushLog(spool); err == nil {
		// Started detached, with no stderr: what it does goes to the
		// spool's push.log (the calls' own lines go to the server's log).
		defer lf.Close()
		e.log = newLogger(lf, e.cfg.LogLevel, e.cfg.LogFormat)
		ctx = e.log.WithContext(ctx)
	}
	ln, err := archive.Listen(sock)
	if err != nil {
		return err
	}
	e.crcCache = filepath.Join(spool, "s3-checks-crc32c")
	r, err := e.WritableRepo(ctx)
	if err != nil {
		ln.Close()
		os.Remove(sock)
		return err
	}
	// One request now, so the TLS handshake and the SDK's set-up happen
	// while the call that started this pusher still pushes, not in the next.
	_, _ = r.Store().Stat(ctx, catalog.MarkerKey)
	srv := archive.NewServer(archive.ServerOptions{Fingerprint: e.pushFingerprint(), Push: archive.PushOptions{
		Store: r.Store(), Codec: r.Codec(), SpoolDir: spool, Concurrency: e.cfg.PushConcurrency,
		RepoID: e.cfg.Repo, Version: version,
	}})
	start := time.Now()
	e.log.Info().Str("socket", sock).Int("push_concurrency", e.cfg.PushConcurrency).Msg("resident pusher started")
	err = srv.ServeResident(ctx, ln, sock, archive.ResidentIdle, alive)
	st := srv.Stats()
	e.log.Info().Int64("ok", st.OK).Int64("failed", st.Failed).Int64("refused", st.Refused).Int64("look_ahead", st.LookAhead).
		Dur("lived", time.Since(start).Round(time.Millisecond)).Err(err).Msg("resident pusher stopped")
	return err
}

// pushLogMax is the size past which the resident pusher's log moves to
// push.log.1: two files, at most about twice this, however long it lives.
const pushLogMax = 4 << 20

// pushLog is the resident pusher's log file in the spool.
type pushLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	size int64
}

func openPushLog(spool string) (*pushLog, error) {
	l := &pushLog{path: filepath.Join(spool, "push.log")}
	return l, l.open()
}

func (l *pushLog) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, fi.Size()
	return nil
}

func (l *pushLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size+int64(len(p)) > pushLogMax && l.size > 0 {
		l.f.Close()
		_ = os.Rename(l.path, l.path+".1")
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *pushLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// walDeadline bounds one wal-push or wal-fetch by retry_timeout, retries
// included: PostgreSQL runs archive_command and restore_command one at a
// time, so a call stuck on a stalled store would stop archiving (while
// pg_wal fills) or recovery. storage_timeout already fails each stalled
// request; this bounds the retries and a transfer that merely crawls.
func (e *env) walDeadline(ctx context.Context, cmd string) (context.Context, context.CancelFunc) {
	if e.cfg.RetryTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, e.cfg.RetryTimeout,
		fmt.Errorf("%s gave up after retry_timeout (%s)", cmd, e.cfg.RetryTimeout))
}

// deadlineErr names the bound that ended the call, if walDeadline's did.
func deadlineErr(ctx context.Context, err error) error {
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("%v: %w", cause, err)
	}
	return err
}
