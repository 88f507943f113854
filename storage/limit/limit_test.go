package limit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/time/rate"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// TestStoreConformance: limited in both directions, the store still
// passes the suite (the limits are far above what it moves).
func TestStoreConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return New(storagetest.NewMemory(), NewLimiter(8<<30), NewLimiter(8<<30))
	})
}

// recorder replaces wait for one test and returns what each limiter was
// asked for, in order.
func recorder(t *testing.T) func(*rate.Limiter) []int {
	t.Helper()
	var mu sync.Mutex
	calls := map[*rate.Limiter][]int{}
	old := wait
	wait = func(ctx context.Context, lim *rate.Limiter, n int) error {
		mu.Lock()
		calls[lim] = append(calls[lim], n)
		mu.Unlock()
		return old(ctx, lim, n)
	}
	t.Cleanup(func() { wait = old })
	return func(lim *rate.Limiter) []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), calls[lim]...)
	}
}

func sum(ns []int) (s int64) {
	for _, n := range ns {
		s += int64(n)
	}
	return s
}

// unlimited is a limiter that never waits, with a small burst, so the
// steps of each transfer show.
func unlimited(burst int) *rate.Limiter { return rate.NewLimiter(rate.Inf, burst) }

// TestUploadPays: every byte of a Put or Create body is paid to the
// upload limiter, never in a step larger than its burst, and nothing to
// the download limiter.
func TestUploadPays(t *testing.T) {
	const burst = 64 << 10
	data := bytes.Repeat([]byte("pitr"), 300<<10/4) // 300 KiB: several bursts
	big := bytes.Repeat([]byte{7}, wholeMax+1)
	file := filepath.Join(t.TempDir(), "segment")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		body   func(t *testing.T) io.Reader
		size   int64
		create bool
	}{
		{"bytes.Reader, paid whole", func(*testing.T) io.Reader { return bytes.NewReader(data) }, int64(len(data)), false},
		{"strings.Reader, half read", func(*testing.T) io.Reader {
			r := strings.NewReader(string(data))
			_, _ = r.Seek(int64(len(data)/2), io.SeekStart)
			return r
		}, int64(len(data) - len(data)/2), false},
		{"file, paid whole", func(t *testing.T) io.Reader {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = f.Close() })
			return f
		}, int64(len(data)), true},
		{"stream, large reads", func(*testing.T) io.Reader { return io.MultiReader(bytes.NewBuffer(data)) }, int64(len(data)), false},
		{"stream, one byte reads", func(*testing.T) io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:1000])) }, 1000, true},
		{"in memory, above wholeMax", func(*testing.T) io.Reader { return bytes.NewReader(big) }, int64(len(big)), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := recorder(t)
			up, down := unlimited(burst), unlimited(burst)
			mem := storagetest.NewMemory()
			st := New(mem, up, down)
			put := st.Put
			if tt.create {
				put = st.Create
			}
			if err := put(t.Context(), "k", tt.body(t)); err != nil {
				t.Fatal(err)
			}
			got := calls(up)
			if sum(got) != tt.size {
				t.Errorf("paid %d bytes for a %d-byte body", sum(got), tt.size)
			}
			for _, n := range got {
				if n > burst || n <= 0 {
					t.Fatalf("a wait for %d bytes, burst %d", n, burst)
				}
			}
			if d := calls(down); len(d) != 0 {
				t.Errorf("an upload paid the download limiter: %v", d)
			}
			info, err := mem.Stat(t.Context(), "k")
			if err != nil || info.Size != tt.size {
				t.Errorf("stored %d bytes (%v), want %d", info.Size, err, tt.size)
			}
		})
	}
}

// TestDownloadPays: Get and GetRange bodies pay the download limiter for
// what is read, in steps no larger than its burst.
func TestDownloadPays(t *testing.T) {
	const burst = 16 << 10
	data := bytes.Repeat([]byte("0123456789"), 10000) // 100,000 bytes
	mem := storagetest.NewMemory()
	if err := mem.Put(t.Context(), "k", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		open func(st *Store) (io.ReadCloser, error)
		want []byte
	}{
		{"get", func(st *Store) (io.ReadCloser, error) { return st.Get(t.Context(), "k") }, data},
		{"range", func(st *Store) (io.ReadCloser, error) { return st.GetRange(t.Context(), "k", 1000, 50000) }, data[1000:51000]},
		{"range to the end", func(st *Store) (io.ReadCloser, error) { return st.GetRange(t.Context(), "k", 90000, -1) }, data[90000:]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := recorder(t)
			up, down := unlimited(burst), unlimited(burst)
			rc, err := tt.open(New(mem, up, down))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("read %d bytes, not the object's %d", len(got), len(tt.want))
			}
			paid := calls(down)
			if sum(paid) != int64(len(tt.want)) {
				t.Errorf("paid %d bytes for %d read", sum(paid), len(tt.want))
			}
			for _, n := range paid {
				if n > burst {
					t.Fatalf("a wait for %d bytes, burst %d", n, burst)
				}
			}
			if u := calls(up); len(u) != 0 {
				t.Errorf("a download paid the upload limiter: %v", u)
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		_, err := New(mem, nil, unlimited(burst)).Get(t.Context(), "nope")
		if !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Get = %v, want ErrNotExist", err)
		}
	})
}

// TestSharedLimiter: two stores (a primary and an off-site one) with one
// limiter pair, uploading and downloading at once, draw on the same
// buckets. The limiters refill at one byte a second, so what is left in
// them is what the transfers took (plus a byte per second of the test).
func TestSharedLimiter(t *testing.T) {
	const burst, size = 1 << 20, 200 << 10
	up, down := rate.NewLimiter(1, burst), rate.NewLimiter(1, burst)
	a, b := New(storagetest.NewMemory(), up, down), New(storagetest.NewMemory(), up, down)
	data := bytes.Repeat([]byte{1}, size)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, st := range []*Store{a, b} {
		wg.Add(2)
		go func() { defer wg.Done(); errs <- st.Put(t.Context(), "whole", bytes.NewReader(data)) }()
		go func() {
			defer wg.Done()
			errs <- st.Put(t.Context(), "streamed", io.MultiReader(bytes.NewReader(data)))
		}()
	}
	wg.Wait()
	for _, st := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := st.Get(t.Context(), "streamed")
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				_ = rc.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	const slack = 60 // bytes: a minute of refill
	for _, tt := range []struct {
		name string
		lim  *rate.Limiter
		took float64
	}{{"upload", up, 4 * size}, {"download", down, 2 * size}} {
		left := tt.lim.Tokens()
		if want := burst - tt.took; left < want || left > want+slack {
			t.Errorf("%s limiter holds %.0f tokens, want %.0f (all transfers from one bucket)", tt.name, left, want)
		}
	}
}

// TestWaitEndsWithContext: a transfer waiting for bandwidth stops when its
// context ends, and stores nothing.
func TestWaitEndsWithContext(t *testing.T) {
	lim := rate.NewLimiter(1, 100) // 100 bytes, then a byte a second
	mem := storagetest.NewMemory()
	st := New(mem, lim, lim)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, r := range []io.Reader{strings.NewReader(strings.Repeat("x", 1000)), io.MultiReader(strings.NewReader(strings.Repeat("x", 1000)))} {
		if err := st.Put(ctx, "k", r); !errors.Is(err, context.Canceled) {
			t.Errorf("Put = %v, want context.Canceled", err)
		}
	}
	if _, err := mem.Stat(t.Context(), "k"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("a cancelled Put left an object: %v", err)
	}
}

// passThrough records the readers it is handed.
type passThrough struct {
	*storagetest.Memory
	got []io.Reader
}

func (p *passThrough) Put(ctx context.Context, key string, r io.Reader) error {
	p.got = append(p.got, r)
	return p.Memory.Put(ctx, key, r)
}

// ListUploads and AbortUpload make passThrough a storage.Uploads.
func (p *passThrough) ListUploads(context.Context, string, func(storage.Upload) error) error {
	return nil
}
func (p *passThrough) AbortUpload(context.Context, string, string) error { return nil }

// LockedUntil and ExtendLock make passThrough a storage.Locker.
func (p *passThrough) LockedUntil(context.Context, string) (time.Time, error) {
	return time.Time{}, nil
}
func (p *passThrough) ExtendLock(context.Context, string, time.Time) error { return nil }

// TestUnlimited: nil limiters hand the caller's reader and the store's
// body through untouched (the S3 store picks its upload path by the
// reader's type), and Unwrap reveals the store's optional interfaces.
func TestUnlimited(t *testing.T) {
	inner := &passThrough{Memory: storagetest.NewMemory()}
	st := New(inner, nil, nil)
	r := bytes.NewReader([]byte("abc"))
	if err := st.Put(t.Context(), "k", r); err != nil {
		t.Fatal(err)
	}
	if len(inner.got) != 1 || inner.got[0] != io.Reader(r) {
		t.Errorf("the store got %T, not the caller's reader", inner.got[0])
	}
	if _, ok := storage.UploadsOf(st); !ok {
		t.Error("UploadsOf does not see through the limit")
	}
	if _, ok := storage.LockerOf(New(inner, NewLimiter(1<<20), NewLimiter(1<<20))); !ok {
		t.Error("LockerOf does not see through the limit")
	}
	if _, ok := storage.UploadsOf(New(storagetest.NewMemory(), nil, nil)); ok {
		t.Error("UploadsOf found uploads in a memory store")
	}
}

func TestNewLimiter(t *testing.T) {
	for _, tt := range []struct {
		bps   int64
		burst int // 0: nil limiter
	}{
		{0, 0}, {-5, 0},
		{1, minBurst}, {800 << 10, 200 << 10}, {50 << 20, maxBurst},
	} {
		lim := NewLimiter(tt.bps)
		switch {
		case tt.burst == 0 && lim != nil:
			t.Errorf("NewLimiter(%d) = %v, want nil", tt.bps, lim)
		case tt.burst != 0 && (lim == nil || lim.Burst() != tt.burst || lim.Limit() != rate.Limit(tt.bps)):
			t.Errorf("NewLimiter(%d) = %v, want %d bytes/s, burst %d", tt.bps, lim, tt.bps, tt.burst)
		}
	}
}
