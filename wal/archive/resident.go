package archive

// A resident pusher: when no pitr daemon answers, wal-push starts
// `pitr wal-push-serve` in its spool, which serves the same socket
// protocol on <spool>/push.sock with a warm store client, so the calls
// after the first cost a connect and a few bytes each way, and its
// look-ahead keeps pushing the next .ready files while the archiver runs
// the next call (pgBackRest's archive-async, with the answer given only
// once the file is durably stored, as in-process). One per spool (a
// flock); it ends once asked nothing for ResidentIdle, when the process
// that ran archive_command is gone, when its socket file is, or when a
// call comes with other settings (the next call starts a fresh one).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

const (
	residentSocketName = "push.sock"
	residentLockName   = "push.lock"
	// ResidentIdle is how long a resident pusher asked nothing stays.
	ResidentIdle = 20 * time.Second
)

// ErrNoListener is wrapped (with ErrNoDaemon) by PushViaSocket when
// nothing listens on the socket.
var ErrNoListener = errors.New("nothing listens on the socket")

// ResidentSocket is the resident pusher's socket in spool, or "" when the
// path is too long for a unix socket.
func ResidentSocket(spool string) string {
	p := filepath.Join(spool, residentSocketName)
	if len(p) > 107 {
		return ""
	}
	return p
}

// LockResident takes spool's resident-pusher lock, which the returned
// file holds until closed; ok is false when another pusher holds it. The
// lock file is read-only and readable by all: a pusher started by hand as
// root leaves one the server's user can still open.
func LockResident(spool string) (f *os.File, ok bool, err error) {
	return tryLock(spool, residentLockName, os.O_RDONLY, 0o644)
}

// tryLock takes an exclusive flock on dir/name (created with flag and
// perm) without waiting; ok is false when another process holds it.
func tryLock(dir, name string, flag int, perm os.FileMode) (f *os.File, ok bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	f, err = os.OpenFile(filepath.Join(dir, name), flag|os.O_CREATE, perm)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return f, true, nil
}

// ServeResident serves on ln (Listen's, at path) until ctx ends or the
// resident pusher's end comes (see the package comment above); alive, if
// set, says whether the process that ran archive_command still runs.
func (s *Server) ServeResident(ctx context.Context, ln *net.UnixListener, path string, idle time.Duration, alive func() bool) error {
	before, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return fmt.Errorf("resident pusher: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.active.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(min(idle/4, 250*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if why := s.residentEnd(path, before, idle, alive); why != "" {
				zerolog.Ctx(ctx).Info().Str("socket", path).Str("why", why).Msg("resident pusher ends")
				cancel()
				return
			}
		}
	}()
	return s.ServePath(ctx, ln, path)
}

// residentEnd says why a resident pusher ends now, or "".
func (s *Server) residentEnd(path string, before os.FileInfo, idle time.Duration, alive func() bool) string {
	if s.stale.Load() {
		return "a call came with other settings"
	}
	if alive != nil && !alive() {
		return "the process that ran archive_command is gone"
	}
	if now, err := os.Stat(path); err != nil || !os.SameFile(before, now) {
		return "its socket is gone"
	}
	s.mu.Lock()
	busy := len(s.flights) > 0 || s.ahead > 0
	s.mu.Unlock()
	if !busy && time.Since(time.Unix(0, s.active.Load())) >= idle {
		return "idle"
	}
	return ""
}
