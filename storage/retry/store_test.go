package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestStoreConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Storage { return New(storagetest.NewMemory(), fast) })
}

// TestStoreConformanceFlaky: the suite passes through a store that fails
// the first attempt of every call it can retry.
func TestStoreConformanceFlaky(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Storage {
		return New(&flaky{Storage: storagetest.NewMemory()}, fast)
	})
}

// flaky fails every other call of each kind with storagetest.ErrDown,
// before it reaches the wrapped store; it leaves calls the wrapper must
// not retry (invalid keys, readers it cannot re-read) alone.
type flaky struct {
	storage.Storage
	n atomic.Int64 // calls seen; odd ones fail
}

func (f *flaky) fail(key string) error {
	if !storage.ValidKey(key) {
		return nil
	}
	if f.n.Add(1)%2 == 1 {
		return fmt.Errorf("%s: %w", key, storagetest.ErrDown)
	}
	return nil
}

func (f *flaky) write(key string, r io.Reader) error {
	if rereadable(r) == nil {
		return nil
	}
	return f.fail(key)
}

func (f *flaky) Put(ctx context.Context, key string, r io.Reader) error {
	if err := f.write(key, r); err != nil {
		return err
	}
	return f.Storage.Put(ctx, key, r)
}

func (f *flaky) Create(ctx context.Context, key string, r io.Reader) error {
	if err := f.write(key, r); err != nil {
		return err
	}
	return f.Storage.Create(ctx, key, r)
}

func (f *flaky) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := f.fail(key); err != nil {
		return nil, err
	}
	return f.Storage.Get(ctx, key)
}

func (f *flaky) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if storage.CheckRange(offset, length) == nil {
		if err := f.fail(key); err != nil {
			return nil, err
		}
	}
	return f.Storage.GetRange(ctx, key, offset, length)
}

func (f *flaky) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if f.n.Add(1)%2 == 1 {
		return fmt.Errorf("list %s: %w", prefix, storagetest.ErrDown)
	}
	return f.Storage.List(ctx, prefix, fn)
}

func (f *flaky) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := f.fail(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	return f.Storage.Stat(ctx, key)
}

func (f *flaky) Delete(ctx context.Context, key string) error {
	if err := f.fail(key); err != nil {
		return err
	}
	return f.Storage.Delete(ctx, key)
}

// TestStoreRetries: every method gets past two transient failures.
func TestStoreRetries(t *testing.T) {
	ctx := t.Context()
	for _, tt := range []struct {
		op   storagetest.Op
		call func(s storage.Storage) error
	}{
		{storagetest.OpPut, func(s storage.Storage) error { return s.Put(ctx, "p", strings.NewReader("data")) }},
		{storagetest.OpCreate, func(s storage.Storage) error { return s.Create(ctx, "c", bytes.NewBufferString("data")) }},
		{storagetest.OpGet, func(s storage.Storage) error {
			rc, err := s.Get(ctx, "x")
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{storagetest.OpGet, func(s storage.Storage) error {
			rc, err := s.GetRange(ctx, "x", 1, 2)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{storagetest.OpStat, func(s storage.Storage) error { _, err := s.Stat(ctx, "x"); return err }},
		{storagetest.OpList, func(s storage.Storage) error {
			return s.List(ctx, "", func(storage.ObjectInfo) error { return nil })
		}},
		{storagetest.OpDelete, func(s storage.Storage) error { return s.Delete(ctx, "x") }},
	} {
		t.Run(string(tt.op), func(t *testing.T) {
			mem := storagetest.NewMemory()
			if err := mem.Put(ctx, "x", strings.NewReader("xyz")); err != nil {
				t.Fatal(err)
			}
			f := storagetest.NewFaulty(mem)
			f.Fail(tt.op, 2, storagetest.ErrDown)
			if err := tt.call(New(f, fast)); err != nil {
				t.Fatalf("%s: %v", tt.op, err)
			}
			if n := f.Calls(tt.op); n != 3 {
				t.Errorf("%s: %d calls, want 3", tt.op, n)
			}
		})
	}
}

// TestStoreNoRetry: errors retrying cannot fix come back after one call.
func TestStoreNoRetry(t *testing.T) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		err  error // injected; nil: the call fails on its own
		call func(ctx context.Context, s storage.Storage) error
		want error
	}{
		{"permanent", t.Context(), storage.Permanent(errors.New("403 forbidden")), getX, storage.ErrPermanent},
		{"cancelled", t.Context(), context.Canceled, getX, context.Canceled},
		{"context ended", cancelled, storagetest.ErrDown, getX, storagetest.ErrDown},
		{"not exist", t.Context(), nil, func(ctx context.Context, s storage.Storage) error {
			_, err := s.Get(ctx, "missing")
			return err
		}, storage.ErrNotExist},
		{"exist", t.Context(), nil, func(ctx context.Context, s storage.Storage) error {
			return s.Create(ctx, "x", strings.NewReader("again"))
		}, storage.ErrExist},
		{"invalid key", t.Context(), storagetest.ErrDown, func(ctx context.Context, s storage.Storage) error {
			_, err := s.Get(ctx, "../x")
			return err
		}, storagetest.ErrDown},
		{"invalid range", t.Context(), storagetest.ErrDown, func(ctx context.Context, s storage.Storage) error {
			_, err := s.GetRange(ctx, "x", -1, 2)
			return err
		}, storagetest.ErrDown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem := storagetest.NewMemory()
			if err := mem.Put(t.Context(), "x", strings.NewReader("xyz")); err != nil {
				t.Fatal(err)
			}
			f := storagetest.NewFaulty(mem)
			if tt.err != nil {
				for _, op := range []storagetest.Op{storagetest.OpGet, storagetest.OpCreate} {
					f.Fail(op, 5, tt.err)
				}
			}
			err := tt.call(tt.ctx, New(f, fast))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if IsPermanent(err) {
				t.Errorf("the Permanent mark leaked: %v", err)
			}
			if n := f.Calls(storagetest.OpGet) + f.Calls(storagetest.OpCreate); n != 1 {
				t.Errorf("%d calls, want 1", n)
			}
		})
	}
}

func getX(ctx context.Context, s storage.Storage) error {
	_, err := s.Get(ctx, "x")
	return err
}

// TestStoreReaders: a Put whose reader cannot be read again is tried once;
// a seekable one is sent again whole, from where the caller left it.
func TestStoreReaders(t *testing.T) {
	ctx := t.Context()
	t.Run("opaque", func(t *testing.T) {
		f := storagetest.NewFaulty(storagetest.NewMemory())
		f.FailPut(1, storagetest.ErrDown)
		err := New(f, fast).Put(ctx, "k", io.MultiReader(strings.NewReader("data")))
		if !errors.Is(err, storagetest.ErrDown) || f.Calls(storagetest.OpPut) != 1 {
			t.Fatalf("Put = %v after %d calls, want ErrDown after 1", err, f.Calls(storagetest.OpPut))
		}
	})
	t.Run("seeker, failing mid-upload", func(t *testing.T) {
		mem := storagetest.NewMemory()
		f := storagetest.NewFaulty(mem)
		f.FailPutAfter(2, 3, storagetest.ErrDown)
		r := strings.NewReader("skip:payload")
		if _, err := r.Seek(5, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if err := New(f, fast).Put(ctx, "k", r); err != nil {
			t.Fatal(err)
		}
		if got := read(t, mem, "k"); got != "payload" || f.Calls(storagetest.OpPut) != 3 {
			t.Fatalf("stored %q after %d calls, want %q after 3", got, f.Calls(storagetest.OpPut), "payload")
		}
	})
	t.Run("bytes.Buffer", func(t *testing.T) {
		mem := storagetest.NewMemory()
		f := storagetest.NewFaulty(mem)
		f.FailPutAfter(1, 2, storagetest.ErrDown)
		buf := bytes.NewBufferString("payload")
		if err := New(f, fast).Put(ctx, "k", buf); err != nil {
			t.Fatal(err)
		}
		if got := read(t, mem, "k"); got != "payload" || buf.Len() != 0 {
			t.Fatalf("stored %q, buffer left with %d bytes", got, buf.Len())
		}
	})
}

func read(t *testing.T, s storage.Storage, key string) string {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// breakingList fails its first listings after delivering after objects.
type breakingList struct {
	storage.Storage
	breaks, after int
}

func (b *breakingList) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	n := 0
	return b.Storage.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if b.breaks > 0 && n == b.after {
			b.breaks--
			return fmt.Errorf("list %s: %w", prefix, storagetest.ErrDown)
		}
		n++
		return fn(oi)
	})
}

// TestStoreListResumes: a listing broken midway goes on after the last key
// delivered, so fn sees each object once, in order; fn's own error is
// never retried.
func TestStoreListResumes(t *testing.T) {
	ctx := t.Context()
	mem := storagetest.NewMemory()
	want := []string{"a/1", "a/2", "a/3", "a/4", "a/5"}
	for _, k := range want {
		if err := mem.Put(ctx, k, strings.NewReader(k)); err != nil {
			t.Fatal(err)
		}
	}
	s := New(&breakingList{Storage: mem, breaks: 2, after: 2}, fast)
	var got []string
	if err := s.List(ctx, "a/", func(oi storage.ObjectInfo) error { got = append(got, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}

	stop := errors.New("enough")
	calls := 0
	err := New(mem, fast).List(ctx, "a/", func(storage.ObjectInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List = %v after %d calls of fn, want %v after 1", err, calls, stop)
	}
}

// uploadsStore implements storage.Uploads.
type uploadsStore struct{ storage.Storage }

func (uploadsStore) ListUploads(context.Context, string, func(storage.Upload) error) error {
	return nil
}
func (uploadsStore) AbortUpload(context.Context, string, string) error { return nil }

func TestStoreUnwrap(t *testing.T) {
	inner := uploadsStore{storagetest.NewMemory()}
	s := New(New(inner, fast), Policy{})
	if s.Unwrap() != storage.Storage(inner) {
		t.Error("wrapping twice gave two layers")
	}
	if up, ok := storage.UploadsOf(s); !ok || up != storage.Uploads(inner) {
		t.Error("UploadsOf does not find the wrapped store's Uploads")
	}
}

// TestStoreZeroPolicy: the zero Policy tries once.
func TestStoreZeroPolicy(t *testing.T) {
	f := storagetest.NewFaulty(storagetest.NewMemory())
	f.Fail(storagetest.OpStat, 3, storagetest.ErrDown)
	if _, err := New(f, Policy{}).Stat(t.Context(), "x"); !errors.Is(err, storagetest.ErrDown) || f.Calls(storagetest.OpStat) != 1 {
		t.Fatalf("Stat = %v after %d calls", err, f.Calls(storagetest.OpStat))
	}
}

// TestStoreLocker: LockerOf finds the wrapped store's Locker, and a delete
// refused for a lock is not retried.
func TestStoreLocker(t *testing.T) {
	ctx := t.Context()
	mem := storagetest.NewMemory()
	mem.LockFor = time.Hour
	f := storagetest.NewFaulty(mem)
	if err := mem.Put(ctx, "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	s := New(mem, fast)
	l, ok := storage.LockerOf(s)
	if !ok || l != storage.Locker(mem) {
		t.Fatal("LockerOf does not find the wrapped store's Locker")
	}
	if _, ok := storage.LockerOf(New(f, fast)); ok {
		t.Error("LockerOf found a Locker in a store without one")
	}
	calls := f.Calls(storagetest.OpDelete)
	if err := New(f, fast).Delete(ctx, "k"); !errors.Is(err, storage.ErrLocked) || f.Calls(storagetest.OpDelete) != calls+1 {
		t.Errorf("Delete of a locked object = %v after %d calls, want ErrLocked after 1", err, f.Calls(storagetest.OpDelete)-calls)
	}
}
