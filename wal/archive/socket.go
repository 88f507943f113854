package archive

// The wal-push socket: `pitr daemon` pushes WAL for `pitr wal-push` on its
// warm store client, so a call costs a connect and a few bytes each way
// instead of the SDK's setup, a TLS handshake and encoder warm-up.
//
// Protocol (one connection per call, one JSON line each way):
//
//	client: {"v":1,"path":"/abs/pg_wal/NAME","repo":"s3://...","deadline_unix_ns":N}
//	daemon: {"status":"ok","key":...,"bytes":N,"stored":N,"existed":B,"acked":B}
//	        {"status":"refused","error":"..."}  the client pushes in-process
//	        {"status":"failed","error":"..."}   the call fails with that error
//
// The daemon answers "ok" only once Push returned nil for the file: the
// same guarantee as an in-process push (durably stored and confirmed, or
// found stored with the same SHA-256). It refuses, so that the client
// pushes itself, when it serves another repository, speaks another
// version, cannot read the file or write its spool (it may run as another
// user, or in a read-only file system), or is shutting down. A push that
// failed on the store (down, conflict, another cluster's repository) is
// "failed": the in-process push would meet the same answer, and
// retry_timeout bounds the whole call. A connection that ends without an
// answer (the daemon died) falls back too; Push is idempotent, so a push
// the daemon had finished is then found stored.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/wal"
)

const socketVersion = 1

// ErrNoDaemon is wrapped by PushViaSocket when the daemon did not push
// the file (no socket, refused, or the connection ended without an
// answer): the caller pushes in-process.
var ErrNoDaemon = errors.New("no daemon push")

type socketRequest struct {
	Version    int    `json:"v"`
	Path       string `json:"path"`
	Repo       string `json:"repo"`
	DeadlineNS int64  `json:"deadline_unix_ns,omitempty"`
	// Config is the client's settings' fingerprint; a resident pusher
	// (ServerOptions.Fingerprint) refuses a request with another.
	Config string `json:"config,omitempty"`
}

type socketResponse struct {
	Status  string `json:"status"` // ok, refused, failed
	Error   string `json:"error,omitempty"`
	Key     string `json:"key,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	Stored  int64  `json:"stored,omitempty"`
	Existed bool   `json:"existed,omitempty"`
	Acked   bool   `json:"acked,omitempty"`
}

// maxLine bounds a request or answer line.
const maxLine = 64 << 10

// PushViaSocket asks the daemon listening on socket to push path (made
// absolute) to repository repoID, and waits for its answer until ctx ends.
// It returns nil only when the daemon reports the file durably stored; an
// error wrapping ErrNoDaemon when the caller should push in-process; any
// other error is the daemon's failed push.
func PushViaSocket(ctx context.Context, socket, path, repoID string) (PushResult, error) {
	return PushViaSocketWith(ctx, socket, path, repoID, "")
}

// PushViaSocketWith is PushViaSocket with the client's settings'
// fingerprint, which a resident pusher checks (and its errors name it).
func PushViaSocketWith(ctx context.Context, socket, path, repoID, fingerprint string) (PushResult, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return PushResult{}, fmt.Errorf("%w: %v", ErrNoDaemon, err)
	}
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return PushResult{}, fmt.Errorf("%w: %w: %v", ErrNoDaemon, ErrNoListener, err)
	}
	defer conn.Close()
	req := socketRequest{Version: socketVersion, Path: abs, Repo: repoID, Config: fingerprint}
	if dl, ok := ctx.Deadline(); ok {
		req.DeadlineNS = dl.UnixNano()
	}
	// ctx ending (retry_timeout) ends the wait; ctx.Err is set by then.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return PushResult{}, fmt.Errorf("%w: send: %v", ErrNoDaemon, err)
	}
	line, err := bufio.NewReaderSize(conn, 4096).ReadSlice('\n')
	if err != nil {
		if ctx.Err() != nil { // out of time: an in-process push would have none either
			return PushResult{}, fmt.Errorf("wal-push via daemon: %w", context.Cause(ctx))
		}
		return PushResult{}, fmt.Errorf("%w: no answer: %v", ErrNoDaemon, err)
	}
	var resp socketResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return PushResult{}, fmt.Errorf("%w: bad answer: %v", ErrNoDaemon, err)
	}
	switch resp.Status {
	case "ok":
		return PushResult{Name: filepath.Base(abs), Key: resp.Key, Bytes: resp.Bytes, Stored: resp.Stored,
			Existed: resp.Existed, Acked: resp.Acked}, nil
	case "failed":
		if fingerprint != "" {
			return PushResult{}, fmt.Errorf("resident pusher: %s", resp.Error)
		}
		return PushResult{}, fmt.Errorf("daemon: %s", resp.Error)
	default:
		return PushResult{}, fmt.Errorf("%w: daemon refused: %s", ErrNoDaemon, resp.Error)
	}
}

// ServerOptions configures NewServer.
type ServerOptions struct {
	// Push is what every push uses: store, codec, spool, repository.
	// Push.Concurrency is how many files the server pushes at once: the
	// ones asked for plus look-ahead at other .ready files beside them.
	Push PushOptions
	// LookAheadTimeout bounds one look-ahead push (default 10m).
	LookAheadTimeout time.Duration
	// Fingerprint, if set, is the settings the server was started with
	// (a resident pusher's): a request made with other settings is
	// refused, and the server ends (ServeResident) so that the next call
	// starts one with the new settings.
	Fingerprint string
}

// SocketStats counts a server's answers.
type SocketStats struct {
	OK, Failed, Refused int64 // requests answered so
	LookAhead           int64 // files stored ahead of their request
	FromMemory          int64 // requests answered by an earlier look-ahead
}

// Server pushes WAL for wal-push over a unix socket.
type Server struct {
	opts ServerOptions

	mu      sync.Mutex
	flights map[string]*flight // by absolute path
	acks    map[string]memAck  // look-ahead results, by absolute path
	ahead   int                // look-ahead pushes running
	base    context.Context    // Serve's: look-ahead ends with the server

	ok, failed, refused, lookAhead, fromMemory atomic.Int64
	lastWarn                                   atomic.Int64 // unix ns; see warnNow
	active                                     atomic.Int64 // unix ns of the last request's start or end
	stale                                      atomic.Bool  // a request came with other settings
}

type flight struct {
	done chan struct{}
}

// memAck is a look-ahead's result. Like the spool's ack it is trusted only
// while the file is the same (size, mtime, inode), and only for ackTTL.
type memAck struct {
	ack
	at time.Time
}

// ackTTL bounds how long a look-ahead result answers a request without
// asking the store (like markerRecheck for the spool's cache).
const ackTTL = 10 * time.Minute

// NewServer returns a server for opts; Serve runs it.
func NewServer(opts ServerOptions) *Server {
	if opts.Push.Concurrency < 1 {
		opts.Push.Concurrency = 1
	}
	if opts.LookAheadTimeout <= 0 {
		opts.LookAheadTimeout = 10 * time.Minute
	}
	return &Server{opts: opts, flights: map[string]*flight{}, acks: map[string]memAck{}}
}

// Stats reports what the server answered so far.
func (s *Server) Stats() SocketStats {
	return SocketStats{OK: s.ok.Load(), Failed: s.failed.Load(), Refused: s.refused.Load(),
		LookAhead: s.lookAhead.Load(), FromMemory: s.fromMemory.Load()}
}

// Listen creates the socket at path, mode 0600 (connecting needs write
// permission, so only the daemon's user and root can), its directory if
// missing. A socket file left by a daemon that is gone is replaced; one
// another daemon answers on is an error.
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("wal-push socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("wal-push socket %s: another daemon listens on it", path)
	}
	// Made under a temporary name, then given its mode, then renamed into
	// place: no client ever sees it with the umask's mode.
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d", filepath.Base(path), os.Getpid()))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("wal-push socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	err = os.Chmod(tmp, 0o600)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("wal-push socket: %w", err)
	}
	return ln, nil
}

// Serve answers requests on ln until ctx ends, then removes the socket
// file (if it is still ln's) and waits for the pushes in progress, which
// see ctx cancelled and are answered "refused".
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	s.mu.Lock()
	s.base = ctx
	s.mu.Unlock()
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			ln.Close()
			wg.Wait()
			return fmt.Errorf("wal-push socket: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, conn)
		}()
	}
	wg.Wait()
	return nil
}

// ServePath is Serve on the socket Listen made at path; at the end it
// removes the socket file, if it is still ln's.
func (s *Server) ServePath(ctx context.Context, ln *net.UnixListener, path string) error {
	before, _ := os.Stat(path)
	defer func() {
		// Only our own socket: a daemon started since may have replaced it.
		if now, err := os.Stat(path); err == nil && before != nil && os.SameFile(before, now) {
			os.Remove(path)
		}
	}()
	zerolog.Ctx(ctx).Info().Str("socket", path).Int("push_concurrency", s.opts.Push.Concurrency).Msg("serving wal-push on unix socket")
	return s.Serve(ctx, ln)
}

func (s *Server) handle(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	log := zerolog.Ctx(ctx)
	start := time.Now()
	s.active.Store(start.UnixNano())
	defer func() { s.active.Store(time.Now().UnixNano()) }()
	uid, pid, credErr := peer(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(conn, maxLine).ReadSlice('\n')
	if err != nil {
		log.Debug().Err(err).Msg("wal-push socket: no request")
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	var req socketRequest
	resp := socketResponse{Status: "refused"}
	var res PushResult
	var waited time.Duration // for a push of the same file already in flight
	switch err := json.Unmarshal(line, &req); {
	case err != nil:
		resp.Error = "bad request: " + err.Error()
	case req.Version != socketVersion:
		resp.Error = fmt.Sprintf("protocol version %d, this daemon speaks %d", req.Version, socketVersion)
	case credErr != nil:
		resp.Error = "cannot read the peer's credentials: " + credErr.Error()
	case uid != 0 && int(uid) != os.Geteuid():
		// The mode already keeps others out; this holds if it is widened.
		resp.Error = fmt.Sprintf("uid %d may not use this daemon", uid)
	case req.Repo != s.opts.Push.RepoID:
		resp.Error = "this daemon serves another repository"
	case s.opts.Fingerprint != "" && req.Config != s.opts.Fingerprint:
		resp.Error = "this resident pusher was started with other settings; it ends"
		s.stale.Store(true)
	case !filepath.IsAbs(req.Path):
		resp.Error = "path is not absolute"
	default:
		pctx := ctx
		if req.DeadlineNS > 0 {
			var cancel context.CancelFunc
			pctx, cancel = context.WithDeadline(ctx, time.Unix(0, req.DeadlineNS))
			defer cancel()
		}
		res, waited, err = s.push(pctx, req.Path)
		switch {
		case err == nil:
			resp = socketResponse{Status: "ok", Key: res.Key, Bytes: res.Bytes, Stored: res.Stored, Existed: res.Existed, Acked: res.Acked}
		case errors.Is(err, errLocal), ctx.Err() != nil: // see the package comment
			resp.Error = oneLine(err.Error())
		default:
			resp = socketResponse{Status: "failed", Error: oneLine(err.Error())}
		}
	}
	switch resp.Status {
	case "ok":
		s.ok.Add(1)
	case "failed":
		s.failed.Add(1)
	default:
		s.refused.Add(1)
	}
	b, _ := json.Marshal(resp)
	_, werr := conn.Write(append(b, '\n'))
	took := time.Since(start)
	ev := log.Debug()
	if (resp.Status != "ok" && s.warnNow()) || took > slowRequest {
		ev = log.Warn()
	}
	ev.Int64("peer_uid", int64(uid)).Int32("peer_pid", pid).Str("file", filepath.Base(req.Path)).Str("status", resp.Status).
		Str("error", resp.Error).Bool("acked", res.Acked).Dur("took", took.Round(time.Microsecond)).
		Dur("waited_for_look_ahead", waited.Round(time.Microsecond)).AnErr("write_error", werr).Msg("wal-push request")
}

// warnNow says whether a request that was not answered "ok" is logged as
// a warning: at most one a minute, since a daemon that cannot push (a
// read-only spool, say) would otherwise warn for every segment.
func (s *Server) warnNow() bool {
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	return now-last >= int64(time.Minute) && s.lastWarn.CompareAndSwap(last, now)
}

// peer reads the connecting process's credentials (SO_PEERCRED).
func peer(conn *net.UnixConn) (uid uint32, pid int32, err error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if serr != nil {
		return 0, 0, serr
	}
	return cred.Uid, cred.Pid, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// slowRequest is how long a request may take before its line is a
// warning: it says how much of it was spent waiting for a look-ahead push
// of the same file, the rest being its own push.
const slowRequest = time.Second

// push archives path: from a look-ahead's result if it holds for the file
// as it is now, after waiting for a push of the same file in progress, or
// with Push. It starts look-ahead at the .ready files beside it. waited is
// the time spent waiting for a push in progress.
func (s *Server) push(ctx context.Context, path string) (PushResult, time.Duration, error) {
	var waited time.Duration
	name, err := wal.ParseName(filepath.Base(path))
	if err != nil {
		return PushResult{}, 0, localErr(err)
	}
	for {
		fi, err := os.Stat(path)
		if err != nil {
			return PushResult{}, waited, fmt.Errorf("wal-push: %w", localErr(err))
		}
		s.mu.Lock()
		if a, ok := s.acks[path]; ok {
			delete(s.acks, path)
			if sameFile(a.ack, fi) && time.Since(a.at) < ackTTL {
				s.mu.Unlock()
				s.fromMemory.Add(1)
				s.startLookAhead(ctx, path, name)
				return PushResult{Name: name.String(), Key: a.Key, Bytes: a.Size, Stored: a.Stored, Acked: true}, waited, nil
			}
		}
		if f := s.flights[path]; f != nil {
			s.mu.Unlock()
			t := time.Now()
			select { // then look again: it may have left an ack
			case <-f.done:
				waited += time.Since(t)
				continue
			case <-ctx.Done():
				return PushResult{}, waited + time.Since(t), fmt.Errorf("wal-push: %w", context.Cause(ctx))
			}
		}
		f := &flight{done: make(chan struct{})}
		s.flights[path] = f
		s.mu.Unlock()
		opts := s.opts.Push
		opts.Concurrency = 1 // the server looks ahead itself, without waiting for it
		res, err := Push(ctx, path, opts)
		s.land(path, f)
		// Look ahead only now: the archiver waits for this file alone, and
		// on a small machine pushes beside it would only slow it down. The
		// next call, a process start away, finds its file in flight.
		s.startLookAhead(ctx, path, name)
		return res, waited, err
	}
}

func (s *Server) land(path string, f *flight) {
	s.mu.Lock()
	delete(s.flights, path)
	s.mu.Unlock()
	close(f.done)
}

// startLookAhead pushes, in the background, the oldest .ready files beside
// path that are neither pushed already nor in progress, while fewer than
// Concurrency-1 look-ahead pushes run. They are not bound by the request's
// deadline, only by LookAheadTimeout and the server's end.
func (s *Server) startLookAhead(ctx context.Context, path string, self wal.Name) {
	limit := s.opts.Push.Concurrency - 1
	if limit < 1 {
		return
	}
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(filepath.Join(dir, "archive_status"))
	if err != nil {
		return
	}
	var names []string
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok || n == self.String() {
			continue
		}
		if _, err := wal.ParseName(n); err == nil {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool { // as PostgreSQL's archiver: histories first
		hi, hj := strings.HasSuffix(names[i], ".history"), strings.HasSuffix(names[j], ".history")
		if hi != hj {
			return hi
		}
		return names[i] < names[j]
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for p, a := range s.acks { // forget results nobody asked for
		if now.Sub(a.at) > ackTTL {
			delete(s.acks, p)
		}
	}
	for _, n := range names {
		if s.ahead >= limit {
			return
		}
		p := filepath.Join(dir, n)
		if _, ok := s.acks[p]; ok || s.flights[p] != nil {
			continue
		}
		f := &flight{done: make(chan struct{})}
		s.flights[p] = f
		s.ahead++
		base := s.base
		if base == nil {
			base = context.WithoutCancel(ctx)
		}
		go s.pushAhead(base, p, f)
	}
}

// pushAhead pushes path ahead of its request and keeps the result in
// memory, if the file stayed the same file throughout.
func (s *Server) pushAhead(ctx context.Context, path string, f *flight) {
	defer func() {
		s.mu.Lock()
		s.ahead--
		s.mu.Unlock()
		s.land(path, f)
	}()
	ctx, cancel := context.WithTimeout(ctx, s.opts.LookAheadTimeout)
	defer cancel()
	log := zerolog.Ctx(ctx)
	before, err := os.Stat(path)
	if err != nil {
		return // archived and removed meanwhile
	}
	opts := s.opts.Push
	opts.Concurrency = 1
	res, err := Push(ctx, path, opts)
	if err != nil {
		log.Warn().Err(err).Str("file", filepath.Base(path)).Msg("look-ahead push failed; its request will push it")
		return
	}
	after, err := os.Stat(path)
	if err != nil || inode(after) != inode(before) || after.Size() != res.Bytes || !after.ModTime().Equal(before.ModTime()) {
		return
	}
	stored := res.Stored
	if res.Existed || res.Acked {
		oi, err := s.opts.Push.Store.Stat(ctx, res.Key)
		if err != nil {
			return
		}
		stored = oi.Size
	}
	s.lookAhead.Add(1)
	s.mu.Lock()
	s.acks[path] = memAck{ack: ack{Key: res.Key, Size: before.Size(), MtimeNS: before.ModTime().UnixNano(), Inode: inode(before), Stored: stored}, at: time.Now()}
	s.mu.Unlock()
}
