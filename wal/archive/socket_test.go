package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// serve starts a socket server for f's repository ("mem") and returns its
// socket path.
func (f *fixture) serve(concurrency int) (string, *Server) {
	f.t.Helper()
	path := sockPath(f.t)
	ln, err := Listen(path)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := NewServer(ServerOptions{Push: f.pushOpts(concurrency)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServePath(ctx, ln, path) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("serve: %v", err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			f.t.Errorf("socket file left behind: %v", err)
		}
	})
	return path, srv
}

func TestSocketPush(t *testing.T) {
	f := newFixture(t, nil)
	sock, srv := f.serve(1)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v, %v: want a socket of mode 0600", fi.Mode(), err)
	}
	p := f.segment("000000010000000000000001")
	res, err := PushViaSocket(t.Context(), sock, p, "mem")
	if err != nil || res.Key == "" {
		t.Fatalf("push via socket: %+v, %v", res, err)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if err := Fetch(t.Context(), "000000010000000000000001", dest, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, f.pushed["000000010000000000000001"]) {
		t.Fatal("fetched copy differs")
	}
	// Again: found stored with the same SHA-256.
	if res, err := PushViaSocket(t.Context(), sock, p, "mem"); err != nil || !res.Existed {
		t.Fatalf("second push: %+v, %v", res, err)
	}
	if st := srv.Stats(); st.OK != 2 || st.Failed+st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSocketRefusals(t *testing.T) {
	f := newFixture(t, nil)
	sock, srv := f.serve(1)
	p := f.segment("000000010000000000000001")
	for name, tc := range map[string]struct{ sock, repo, path string }{
		"other repository": {sock, "s3://other/db", p},
		"no socket":        {filepath.Join(filepath.Dir(sock), "none.sock"), "mem", p},
		"missing file":     {sock, "mem", filepath.Join(f.pgwal, "000000010000000000000009")},
		"not a WAL name":   {sock, "mem", filepath.Join(f.pgwal, "archive_status")},
	} {
		_, err := PushViaSocket(t.Context(), tc.sock, tc.path, tc.repo)
		if !errors.Is(err, ErrNoDaemon) {
			t.Errorf("%s: %v, want ErrNoDaemon (push in-process)", name, err)
		}
	}
	if st := srv.Stats(); st.Refused != 3 || st.OK != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := f.store.Stat(t.Context(), "wal"); err == nil {
		t.Fatal("something stored")
	}
}

// A spool the daemon cannot write (a read-only file system for it) is
// refused: wal-push may well write it.
func TestSocketSpoolUnwritable(t *testing.T) {
	f := newFixture(t, nil)
	opts := f.pushOpts(1)
	opts.SpoolDir = filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(opts.SpoolDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := sockPath(t)
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = NewServer(ServerOptions{Push: opts}).Serve(ctx, ln) }()
	_, err = PushViaSocket(t.Context(), sock, f.segment("000000010000000000000001"), "mem")
	if !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("%v, want ErrNoDaemon", err)
	}
}

// The store down behind the daemon: the push fails with the daemon's
// error, and is not handed back to be retried in-process.
func TestSocketStoreDown(t *testing.T) {
	faulty := storagetest.NewFaulty(storagetest.NewMemory())
	f := newFixture(t, faulty)
	sock, srv := f.serve(1)
	p := f.segment("000000010000000000000001")
	faulty.SetDown(true)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := PushViaSocket(ctx, sock, p, "mem")
	if err == nil || errors.Is(err, ErrNoDaemon) {
		t.Fatalf("push with the store down: %v, want the daemon's failure", err)
	}
	if st := srv.Stats(); st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
	faulty.SetDown(false)
	if _, err := PushViaSocket(t.Context(), sock, p, "mem"); err != nil {
		t.Fatalf("push after the store came back: %v", err)
	}
}

// A conflict is the daemon's failure too: different bytes are never
// stored under a name.
func TestSocketConflict(t *testing.T) {
	f := newFixture(t, nil)
	sock, _ := f.serve(1)
	p := f.segment("000000010000000000000001")
	if _, err := PushViaSocket(t.Context(), sock, p, "mem"); err != nil {
		t.Fatal(err)
	}
	f.segment("000000010000000000000001") // other random bytes
	_, err := PushViaSocket(t.Context(), sock, p, "mem")
	if err == nil || errors.Is(err, ErrNoDaemon) {
		t.Fatalf("conflicting push: %v, want the daemon's failure", err)
	}
}

// A daemon that dies with the request read and no answer sent: the client
// is told to push in-process, never that the file is stored.
func TestSocketDaemonDies(t *testing.T) {
	sock := sockPath(t)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Read(make([]byte, 100))
		c.Close()
	}()
	f := newFixture(t, nil)
	_, err = PushViaSocket(t.Context(), sock, f.segment("000000010000000000000001"), "mem")
	if !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("%v, want ErrNoDaemon", err)
	}
}

// A daemon that does not answer in time: the call fails when its
// deadline passes (retry_timeout bounds it), and says so.
func TestSocketDeadline(t *testing.T) {
	sock := sockPath(t)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c) // reads, never answers
		}
	}()
	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = PushViaSocket(ctx, sock, f.segment("000000010000000000000001"), "mem")
	if err == nil || errors.Is(err, ErrNoDaemon) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v, want a deadline failure", err)
	}
}

// Look-ahead: the daemon pushes the .ready files beside the one asked
// for; their requests are answered from memory, unless the file changed.
func TestSocketLookAhead(t *testing.T) {
	f := newFixture(t, nil)
	sock, srv := f.serve(4)
	var paths []string
	for _, n := range []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003", "000000010000000000000004"} {
		paths = append(paths, f.segment(n))
	}
	if _, err := PushViaSocket(t.Context(), sock, paths[0], "mem"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return srv.Stats().LookAhead >= 3, "three files pushed ahead"
	})
	res, err := PushViaSocket(t.Context(), sock, paths[1], "mem")
	if err != nil || !res.Acked {
		t.Fatalf("push of a file pushed ahead: %+v, %v", res, err)
	}
	// A file that changed since its look-ahead is pushed again (and here
	// refused: the bytes differ from those stored).
	f.segment("000000010000000000000003")
	if _, err := PushViaSocket(t.Context(), sock, paths[2], "mem"); err == nil || errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), wal.ErrConflict.Error()) {
		t.Fatalf("changed file: %v, want a conflict (not an answer from memory)", err)
	}
	objs, err := wal.ListWAL(t.Context(), f.store, "000000010000000000000004")
	if err != nil || len(objs) != 1 {
		t.Fatalf("segment 4 stored %d times, %v", len(objs), err)
	}
	if st := srv.Stats(); st.FromMemory != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkPushSocket: one segment pushed per op, in-process (Push) and
// through the socket server, to the in-memory store; each op pushes a new
// name. The difference is the socket's cost per call (the daemon saves the
// process's store set-up, which this does not see).
func BenchmarkPushSocket(b *testing.B) {
	for _, via := range []string{"in-process", "socket"} {
		b.Run(via, func(b *testing.B) {
			f := newFixture(b, nil)
			var sock string
			if via == "socket" {
				sock = sockPath(b)
				ln, err := Listen(sock)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() { _ = NewServer(ServerOptions{Push: f.pushOpts(1)}).Serve(ctx, ln) }()
			}
			seg := make([]byte, testSegSize)
			rand.Read(seg[:testSegSize/2]) // half incompressible
			b.SetBytes(testSegSize)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				name := fmt.Sprintf("0000000100000000%08X", i+1)
				p := filepath.Join(f.pgwal, name)
				copy(seg[testSegSize/2:], name)
				if err := os.WriteFile(p, seg, 0o600); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				var err error
				if sock != "" {
					_, err = PushViaSocket(context.Background(), sock, p, "mem")
				} else {
					_, err = Push(context.Background(), p, f.pushOpts(1))
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// stalled blocks every Create until its context ends.
type stalled struct {
	*storagetest.Memory
	entered chan struct{}
}

func (s stalled) Create(ctx context.Context, key string, r io.Reader) error {
	s.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// The daemon shutting down (SIGTERM) mid-push: the push is cancelled and
// the request refused, so the client pushes in-process; nothing counts as
// stored.
func TestSocketShutdownMidPush(t *testing.T) {
	st := stalled{Memory: storagetest.NewMemory(), entered: make(chan struct{}, 1)}
	f := newFixture(t, st)
	sock := sockPath(t)
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- NewServer(ServerOptions{Push: f.pushOpts(1)}).ServePath(ctx, ln, sock) }()
	got := make(chan error, 1)
	go func() {
		_, err := PushViaSocket(t.Context(), sock, f.segment("000000010000000000000001"), "mem")
		got <- err
	}()
	<-st.entered
	cancel()
	if err := <-got; !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("push cut short by the daemon's shutdown: %v, want ErrNoDaemon", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after shutdown: %v", err)
	}
}

// sockPath returns a socket path in a new directory removed when the test
// ends. Unix socket paths are short (108 bytes): not under t.TempDir().
func sockPath(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "pitrsock")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// ordered records, for each Create of a WAL segment, the segments whose
// Create had finished when it began.
type ordered struct {
	*storagetest.Memory
	mu   sync.Mutex
	done []string
	seen map[string][]string
}

func (o *ordered) Create(ctx context.Context, key string, r io.Reader) error {
	seg := ""
	if strings.HasPrefix(key, "wal/") {
		seg = filepath.Base(key)[:24]
		o.mu.Lock()
		o.seen[seg] = slices.Clone(o.done)
		o.mu.Unlock()
	}
	err := o.Memory.Create(ctx, key, r)
	if seg != "" {
		o.mu.Lock()
		o.done = append(o.done, seg)
		o.mu.Unlock()
	}
	return err
}

// The segment a request asks for is pushed alone; look-ahead at the other
// .ready files starts once it is stored: the archiver waits for it, and
// pushes beside it would share the CPU it needs.
func TestSocketRequestBeforeLookAhead(t *testing.T) {
	st := &ordered{Memory: storagetest.NewMemory(), seen: map[string][]string{}}
	if err := repo.New(st, nil).Ensure(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, st)
	sock, srv := f.serve(4)
	first := f.segment("000000010000000000000001")
	for _, n := range []string{"000000010000000000000002", "000000010000000000000003", "000000010000000000000004"} {
		f.segment(n)
	}
	if _, err := PushViaSocket(t.Context(), sock, first, "mem"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return srv.Stats().LookAhead >= 3, "three files pushed ahead"
	})
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.seen["000000010000000000000001"]) != 0 {
		t.Fatalf("the requested segment's upload began after %v", st.seen["000000010000000000000001"])
	}
	for _, n := range []string{"000000010000000000000002", "000000010000000000000003", "000000010000000000000004"} {
		if !slices.Contains(st.seen[n], "000000010000000000000001") {
			t.Errorf("look-ahead upload of %s began before the requested segment was stored (done then: %v)", n, st.seen[n])
		}
	}
}
