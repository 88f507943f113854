package archive

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serveResident starts a resident pusher for f's repository in a fresh
// spool and returns its socket and a channel that gets Serve's result.
func (f *fixture) serveResident(fingerprint string, idle time.Duration, alive func() bool) (string, *Server, <-chan error) {
	f.t.Helper()
	spool := filepath.Dir(sockPath(f.t))
	lock, ok, err := LockResident(spool)
	if err != nil || !ok {
		f.t.Fatalf("lock: %v %v", ok, err)
	}
	f.t.Cleanup(func() { lock.Close() })
	if _, ok, err := LockResident(spool); ok || err != nil {
		f.t.Fatalf("a second resident pusher got the lock: %v", err)
	}
	sock := ResidentSocket(spool)
	ln, err := Listen(sock)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := NewServer(ServerOptions{Push: f.pushOpts(2), Fingerprint: fingerprint})
	done := make(chan error, 1)
	go func() { done <- srv.ServeResident(f.t.Context(), ln, sock, idle, alive) }()
	return sock, srv, done
}

func ended(t *testing.T, done <-chan error, within time.Duration, why string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: serve: %v", why, err)
		}
	case <-time.After(within):
		t.Fatalf("resident pusher still serving %s after %s", why, within)
	}
}

// A resident pusher pushes what it is asked, refuses a call with other
// settings and then ends; the client sees "nothing listens" once it has.
func TestResidentPusherSettings(t *testing.T) {
	f := newFixture(t, nil)
	sock, srv, done := f.serveResident("a", time.Hour, nil)
	p := f.segment("000000010000000000000001")
	if res, err := PushViaSocketWith(t.Context(), sock, p, "mem", "a"); err != nil || res.Key == "" {
		t.Fatalf("push: %+v %v", res, err)
	}
	q := f.segment("000000010000000000000002")
	_, err := PushViaSocketWith(t.Context(), sock, q, "mem", "b")
	if !errors.Is(err, ErrNoDaemon) || errors.Is(err, ErrNoListener) {
		t.Fatalf("call with other settings: %v, want refused (pushed in-process)", err)
	}
	ended(t, done, 5*time.Second, "after a call with other settings")
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err := PushViaSocketWith(t.Context(), sock, q, "mem", "b"); !errors.Is(err, ErrNoListener) {
		t.Fatalf("after the end: %v, want nothing listening", err)
	}
	if st := srv.Stats(); st.OK != 1 || st.Refused != 1 {
		t.Errorf("stats %+v", st)
	}
}

// It ends once idle, once the process that ran archive_command is gone,
// and once its socket file is removed (the data directory went).
func TestResidentPusherEnds(t *testing.T) {
	f := newFixture(t, nil)
	sock, _, done := f.serveResident("", 300*time.Millisecond, nil)
	if _, err := PushViaSocketWith(t.Context(), sock, f.segment("000000010000000000000001"), "mem", ""); err != nil {
		t.Fatal(err)
	}
	ended(t, done, 5*time.Second, "idle")

	gone := make(chan struct{})
	_, _, done = f.serveResident("", time.Hour, func() bool {
		select {
		case <-gone:
			return false
		default:
			return true
		}
	})
	close(gone)
	ended(t, done, 5*time.Second, "with the archiver gone")

	sock, _, done = f.serveResident("", time.Hour, nil)
	if _, err := PushViaSocketWith(t.Context(), sock, f.segment("000000010000000000000002"), "mem", ""); err != nil {
		t.Fatal(err) // serving, so the socket file is its own
	}
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	ended(t, done, 5*time.Second, "without its socket file")
}

// A push in progress holds an idle pusher: it ends after, not during.
func TestResidentPusherBusyIsNotIdle(t *testing.T) {
	f := newFixture(t, nil)
	_, srv, done := f.serveResident("", 50*time.Millisecond, nil)
	srv.mu.Lock()
	srv.ahead++ // as a look-ahead push running
	srv.mu.Unlock()
	time.Sleep(400 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("ended with a push in progress: %v", err)
	default:
	}
	srv.mu.Lock()
	srv.ahead--
	srv.mu.Unlock()
	ended(t, done, 5*time.Second, "idle after the push")
}
