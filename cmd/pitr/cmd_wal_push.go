package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

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
the daemon pushes it on its warm connection and answers once it is stored.`,
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
		start := time.Now()
		res, err := archive.PushViaSocket(ctx, e.cfg.Socket, path, e.cfg.Repo)
		if err == nil {
			e.log.Info().Str("segment", res.Name).Str("via", "daemon").Bool("existed", res.Existed).Bool("acked", res.Acked).
				Int64("stored", res.Stored).Dur("took", time.Since(start).Round(time.Microsecond)).Msg("wal pushed")
			return nil
		}
		if !errors.Is(err, archive.ErrNoDaemon) { // the daemon's push failed: in-process would fail alike
			return deadlineErr(ctx, fmt.Errorf("wal-push %s: %w", baseName(path), err))
		}
		e.log.Debug().Err(err).Str("socket", e.cfg.Socket).Msg("pushing in-process")
	}
	// A process that pushes one segment would send Content-MD5 with it
	// every time: what the first call learned about the store is kept in
	// the spool (see s3.Options.CRC32CCache).
	spool := e.cfg.SpoolDir
	if spool == "" {
		spool = filepath.Join(filepath.Dir(path), "pitr")
	}
	e.crcCache = filepath.Join(spool, "s3-checks-crc32c")
	r, err := e.WritableRepo(ctx)
	if err != nil {
		return err
	}
	_, err = archive.Push(ctx, path, archive.PushOptions{
		Store: r.Store(), Codec: r.Codec(), SpoolDir: e.cfg.SpoolDir, Concurrency: e.cfg.PushConcurrency,
		RepoID: e.cfg.Repo, Version: version,
	})
	return deadlineErr(ctx, err)
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
