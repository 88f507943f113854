package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pitr-dev/pitr/storage"
)

// Run is the conformance suite every storage.Storage passes (see restic's
// internal/backend/test/suite.go). newStore returns an empty store; each
// subtest calls it once. Some objects are larger than 16 MiB and some fail
// after 12 MiB, so a store with 5 MiB parts uploads them in several.
func Run(t *testing.T, newStore func(t *testing.T) storage.Storage) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Storage)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"OverwriteConcurrent", testOverwriteConcurrent},
		{"Missing", testMissing},
		{"Stat", testStat},
		{"List", testList},
		{"ListStops", testListStops},
		{"Delete", testDelete},
		{"FailingReader", testFailingReader},
		{"CancelledPut", testCancelledPut},
		{"InvalidKeys", testInvalidKeys},
		{"ConcurrentPuts", testConcurrentPuts},
		{"PutFromFile", testPutFromFile},
		{"Create", testCreate},
		{"CreateFailingReader", testCreateFailingReader},
		{"CreateConcurrent", testCreateConcurrent},
		{"GetRange", testGetRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

const mib = 1 << 20

// randomBytes returns n bytes that differ with seed.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// opaque hides everything but Read (io.Seeker, io.WriterTo, *os.File), as
// an encrypting pipe would.
type opaque struct{ r io.Reader }

func (o opaque) Read(p []byte) (int, error) { return o.r.Read(p) }

func mustPut(t *testing.T, s storage.Storage, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func mustGet(t *testing.T, s storage.Storage, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get %s: read: %v", key, err)
	}
	return b
}

func listKeys(t *testing.T, s storage.Storage, prefix string) []string {
	t.Helper()
	keys := []string{}
	err := s.List(t.Context(), prefix, func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

// assertAbsent checks that nothing is visible under key.
func assertAbsent(t *testing.T, s storage.Storage, key string) {
	t.Helper()
	if _, err := s.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat(%q) = %v, want ErrNotExist", key, err)
	}
	rc, err := s.Get(t.Context(), key)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Get(%q) = %v, want ErrNotExist", key, err)
	}
	if keys := listKeys(t, s, key); slices.Contains(keys, key) {
		t.Errorf("List(%q) = %q, want no %s", key, keys, key)
	}
}

func testPutGet(t *testing.T, s storage.Storage) {
	tests := []struct {
		name string
		size int
		wrap func(io.Reader) io.Reader
	}{
		{"empty", 0, nil},
		{"one byte", 1, nil},
		{"small", 4096, nil},
		{"small opaque", 4097, func(r io.Reader) io.Reader { return opaque{r} }},
		{"5MiB", 5 * mib, nil},
		{"10MiB opaque", 10 * mib, func(r io.Reader) io.Reader { return opaque{r} }},
		{"17MiB short reads", 17*mib + 123, func(r io.Reader) io.Reader { return iotest.HalfReader(r) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("put/%d.bin", i)
			data := randomBytes(tt.size, uint64(i))
			var r io.Reader = bytes.NewReader(data)
			if tt.wrap != nil {
				r = tt.wrap(r)
			}
			if err := s.Put(t.Context(), key, r); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := mustGet(t, s, key); !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
			}
			oi, err := s.Stat(t.Context(), key)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if oi.Key != key || oi.Size != int64(tt.size) {
				t.Errorf("Stat = %+v, want key %s, size %d", oi, key, tt.size)
			}
		})
	}
}

func testOverwrite(t *testing.T, s storage.Storage) {
	const key = "over/write"
	for i, size := range []int{1000, 300 << 10, 10, 0, 17} {
		data := randomBytes(size, uint64(i))
		mustPut(t, s, key, data)
		if got := mustGet(t, s, key); !bytes.Equal(got, data) {
			t.Fatalf("after overwrite %d: Get returned %d bytes, want the %d put last", i, len(got), len(data))
		}
		oi, err := s.Stat(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if oi.Size != int64(size) {
			t.Errorf("after overwrite %d: Stat size %d, want %d", i, oi.Size, size)
		}
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{key}) {
		t.Errorf("List = %q, want only %s", keys, key)
	}
}

// testOverwriteConcurrent checks readers see one whole version or the other.
func testOverwriteConcurrent(t *testing.T, s storage.Storage) {
	const key = "over/concurrent"
	versions := [][]byte{randomBytes(256<<10, 1), randomBytes(256<<10+7, 2)}
	mustPut(t, s, key, versions[0])
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for range 8 {
				if err := s.Put(t.Context(), key, bytes.NewReader(versions[w])); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 16 {
				rc, err := s.Get(t.Context(), key)
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Errorf("Get: read: %v", err)
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					t.Errorf("Get returned %d bytes matching neither version", len(got))
					return
				}
			}
		})
	}
	wg.Wait()
}

func testMissing(t *testing.T, s storage.Storage) {
	mustPut(t, s, "dir/obj", []byte("x"))
	for _, key := range []string{"missing", "missing/deeper/key", "dir", "dir/ob", "dir/obj/below", "dir/obj.x"} {
		assertAbsent(t, s, key)
	}
}

func testStat(t *testing.T, s storage.Storage) {
	// Stores keep seconds, perhaps on a clock of their own.
	before := time.Now().Add(-15 * time.Minute)
	mustPut(t, s, "stat/me", make([]byte, 1234))
	after := time.Now().Add(15 * time.Minute)
	oi, err := s.Stat(t.Context(), "stat/me")
	if err != nil {
		t.Fatal(err)
	}
	if oi.Key != "stat/me" || oi.Size != 1234 {
		t.Errorf("Stat = %+v, want key stat/me, size 1234", oi)
	}
	if oi.ModTime.Before(before) || oi.ModTime.After(after) {
		t.Errorf("Stat ModTime %v, want about now", oi.ModTime)
	}
	if oi.ModTime.Location() != time.UTC {
		t.Errorf("Stat ModTime %v is not UTC", oi.ModTime)
	}
}

func testList(t *testing.T, s storage.Storage) {
	// In key order. '-' and '.' sort before '/', so "a-b" and "a.b" come
	// before everything under "a/", and "wal/0001/" before "wal/00010".
	all := []string{
		"a-b",
		"a.b",
		"a/b",
		"a/c.d/e",
		"a/c.d/f.g.h",
		"a0",
		"b.x.y",
		"wal/0001/000000010000000000000001.x",
		"wal/0001/000000010000000000000002.x",
		"wal/0001/000000020000000000000001.x",
		"wal/00010/x",
		"wal/0002/y",
		"z z",
	}
	perm := rand.New(rand.NewPCG(1, 2)).Perm(len(all))
	for _, i := range perm {
		mustPut(t, s, all[i], []byte(all[i])) // size is len(key)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"a", all[:6]},
		{"a/", all[2:5]},
		{"a.", all[1:2]},
		{"a/c", all[3:5]},
		{"a/c.d/", all[3:5]},
		{"a/c.d/f", all[4:5]},
		{"b.x.y", all[6:7]},
		{"b.x.y/", nil},
		{"b.x.y/z", nil},
		{"wal/0001/00000001000", all[7:9]},
		{"wal/0001/", all[7:10]},
		{"wal/0001", all[7:11]},
		{"wal/", all[7:12]},
		{"z", all[12:]},
		{"nothing", nil},
		{"nothing/at/all/", nil},
		{"../", nil},
		{"a//", nil},
		{`a\`, nil},
	}
	for _, tt := range tests {
		var got []string
		err := s.List(t.Context(), tt.prefix, func(oi storage.ObjectInfo) error {
			got = append(got, oi.Key)
			if oi.Size != int64(len(oi.Key)) || oi.ModTime.IsZero() {
				t.Errorf("List(%q) gave %+v, want size %d and a time", tt.prefix, oi, len(oi.Key))
			}
			return nil
		})
		if err != nil {
			t.Errorf("List(%q): %v", tt.prefix, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.List(ctx, "", func(storage.ObjectInfo) error { return nil }); err == nil {
		t.Error("List with a cancelled context succeeded")
	}
}

func testListStops(t *testing.T, s storage.Storage) {
	for _, k := range []string{"l/1", "l/2", "l/3", "l/4"} {
		mustPut(t, s, k, []byte(k))
	}
	stop := errors.New("stop here")
	for _, after := range []int{1, 3} {
		calls := 0
		err := s.List(t.Context(), "l/", func(storage.ObjectInfo) error {
			calls++
			if calls == after {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Errorf("List returned %v, want fn's error", err)
		}
		if calls != after {
			t.Errorf("List called fn %d times after it failed on call %d", calls, after)
		}
	}
}

func testDelete(t *testing.T, s storage.Storage) {
	if err := s.Delete(t.Context(), "never/was"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	mustPut(t, s, "d/e/f", []byte("f"))
	mustPut(t, s, "d/e/g", []byte("g"))
	if err := s.Delete(t.Context(), "d/e/f"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertAbsent(t, s, "d/e/f")
	if err := s.Delete(t.Context(), "d/e/f"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := s.Delete(t.Context(), "d/e"); err != nil {
		t.Errorf("Delete of a key that is only a prefix: %v", err)
	}
	if got := mustGet(t, s, "d/e/g"); string(got) != "g" {
		t.Errorf("sibling changed to %q", got)
	}
	if err := s.Delete(t.Context(), "d/e/g"); err != nil {
		t.Fatal(err)
	}
	if keys := listKeys(t, s, ""); len(keys) != 0 {
		t.Errorf("List after deleting everything = %q", keys)
	}
	mustPut(t, s, "d/e/h", []byte("h")) // into directories a store may have removed
	if got := mustGet(t, s, "d/e/h"); string(got) != "h" {
		t.Errorf("Get = %q, want h", got)
	}
}

// failingReader returns data up to n bytes, then err.
type failingReader struct {
	data []byte
	n    int
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	k := min(len(p), f.n, len(f.data))
	copy(p, f.data[:k])
	f.data, f.n = f.data[k:], f.n-k
	return k, nil
}

func testFailingReader(t *testing.T, s storage.Storage) {
	errRead := errors.New("source failed")
	data := randomBytes(17*mib, 3)
	old := []byte("old content")
	tests := []struct {
		name string
		n    int
		err  error
	}{
		{"at start", 0, errRead},
		{"after 100 bytes", 100, errRead},
		{"after 12MiB", 12 * mib, errRead},
		{"truncated stream", 5 * mib, io.ErrUnexpectedEOF},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("fail/%d", i)
			err := s.Put(t.Context(), key, &failingReader{data: data, n: tt.n, err: tt.err})
			if !errors.Is(err, tt.err) {
				t.Fatalf("Put = %v, want the reader's error", err)
			}
			assertAbsent(t, s, key)

			mustPut(t, s, key, old)
			if err := s.Put(t.Context(), key, &failingReader{data: data, n: tt.n, err: tt.err}); err == nil {
				t.Fatal("Put over an object succeeded with a failing reader")
			}
			if got := mustGet(t, s, key); !bytes.Equal(got, old) {
				t.Errorf("failed Put replaced the object with %d bytes", len(got))
			}
		})
	}
	if keys := listKeys(t, s, ""); len(keys) != len(tests) {
		t.Errorf("List = %q, want only the %d old objects", keys, len(tests))
	}
}

// cancellingReader cancels after n bytes and goes on returning data.
type cancellingReader struct {
	data   []byte
	n      int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), len(c.data))
	if c.n > 0 {
		k = min(k, c.n)
	}
	copy(p, c.data[:k])
	c.data, c.n = c.data[k:], c.n-k
	if c.n <= 0 {
		c.cancel()
	}
	return k, nil
}

func testCancelledPut(t *testing.T, s storage.Storage) {
	data := randomBytes(17*mib, 4)
	for i, n := range []int{0, 100, 12 * mib} {
		t.Run(fmt.Sprintf("after %d bytes", n), func(t *testing.T) {
			key := fmt.Sprintf("cancel/%d", i)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if n == 0 {
				cancel()
			}
			err := s.Put(ctx, key, &cancellingReader{data: data, n: n, cancel: cancel})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put = %v, want context.Canceled", err)
			}
			assertAbsent(t, s, key)
		})
	}
}

func testInvalidKeys(t *testing.T, s storage.Storage) {
	for _, key := range []string{"", "/abs", "a/../b", "..", "a//b", "a/", "./a", "a/.", `a\b`, "a\x00b", strings.Repeat("k", 1025)} {
		if err := s.Put(t.Context(), key, strings.NewReader("x")); err == nil || errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Put(%q) = %v, want an invalid key error", key, err)
		}
		if rc, err := s.Get(t.Context(), key); err == nil || errors.Is(err, storage.ErrNotExist) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Get(%q) = %v, want an invalid key error", key, err)
		}
		if _, err := s.Stat(t.Context(), key); err == nil || errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want an invalid key error", key, err)
		}
		if err := s.Delete(t.Context(), key); err == nil {
			t.Errorf("Delete(%q) succeeded, want an invalid key error", key)
		}
		if err := s.Create(t.Context(), key, strings.NewReader("x")); err == nil || errors.Is(err, storage.ErrNotExist) || errors.Is(err, storage.ErrExist) {
			t.Errorf("Create(%q) = %v, want an invalid key error", key, err)
		}
		if rc, err := s.GetRange(t.Context(), key, 0, 1); err == nil || errors.Is(err, storage.ErrNotExist) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("GetRange(%q) = %v, want an invalid key error", key, err)
		}
	}
	if keys := listKeys(t, s, ""); len(keys) != 0 {
		t.Errorf("List after invalid Puts = %q", keys)
	}
}

func testConcurrentPuts(t *testing.T, s storage.Storage) {
	const n = 16
	var want []string
	var wg sync.WaitGroup
	for i := range n {
		key := fmt.Sprintf("conc/%02d/obj", i)
		want = append(want, key)
		wg.Go(func() {
			if err := s.Put(t.Context(), key, bytes.NewReader(randomBytes(i*1000, uint64(i)))); err != nil {
				t.Errorf("Put: %v", err)
			}
		})
	}
	wg.Wait()
	if got := listKeys(t, s, "conc/"); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	for i, key := range want {
		if got := mustGet(t, s, key); !bytes.Equal(got, randomBytes(i*1000, uint64(i))) {
			t.Errorf("Get(%s) returned other bytes", key)
		}
	}
}

// testPutFromFile hands Put an *os.File positioned after a header, as
// wal-push hands over its sealed spool file: only the rest is stored.
func testPutFromFile(t *testing.T, s storage.Storage) {
	for _, size := range []int{0, 3 * mib, 17 * mib} {
		data := randomBytes(size, uint64(size)+7)
		f, err := os.CreateTemp(t.TempDir(), "put")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(append([]byte("skip"), data...)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(4, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("file/%d", size)
		if err := s.Put(t.Context(), key, f); err != nil {
			t.Fatalf("put %d bytes from a file: %v", size, err)
		}
		f.Close()
		if got := mustGet(t, s, key); !bytes.Equal(got, data) {
			t.Fatalf("%d bytes from a file: got %d bytes back, content equal %v", size, len(got), bytes.Equal(got, data))
		}
	}
}

// testCreate checks that Create stores a new object and refuses, with
// ErrExist, a key that has one (written by Put or Create), leaving it as it
// was. The 17 MiB object takes several parts on S3 (the conditional
// CompleteMultipartUpload); the file takes s3's PutObject-from-file path.
func testCreate(t *testing.T, s storage.Storage) {
	tests := []struct {
		name string
		size int
		wrap func(io.Reader) io.Reader
	}{
		{"empty", 0, nil},
		{"small", 4096, nil},
		{"small opaque", 4097, func(r io.Reader) io.Reader { return opaque{r} }},
		{"17MiB opaque", 17*mib + 5, func(r io.Reader) io.Reader { return opaque{r} }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("create/%d", i)
			data := randomBytes(tt.size, uint64(i)+40)
			reader := func(b []byte) io.Reader {
				if tt.wrap != nil {
					return tt.wrap(bytes.NewReader(b))
				}
				return bytes.NewReader(b)
			}
			if err := s.Create(t.Context(), key, reader(data)); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if got := mustGet(t, s, key); !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes that differ from the %d created", len(got), len(data))
			}
			other := randomBytes(tt.size+10, uint64(i)+80)
			err := s.Create(t.Context(), key, reader(other))
			if !errors.Is(err, storage.ErrExist) {
				t.Fatalf("second Create = %v, want ErrExist", err)
			}
			if got := mustGet(t, s, key); !bytes.Equal(got, data) {
				t.Fatalf("after a refused Create, Get returned %d bytes, want the %d created first", len(got), len(data))
			}
			if oi, err := s.Stat(t.Context(), key); err != nil || oi.Size != int64(len(data)) {
				t.Errorf("after a refused Create, Stat = %+v, %v; want size %d", oi, err, len(data))
			}
		})
	}
	t.Run("over Put", func(t *testing.T) {
		mustPut(t, s, "create/put", []byte("put first"))
		if err := s.Create(t.Context(), "create/put", strings.NewReader("created")); !errors.Is(err, storage.ErrExist) {
			t.Fatalf("Create over a Put object = %v, want ErrExist", err)
		}
		if got := mustGet(t, s, "create/put"); string(got) != "put first" {
			t.Errorf("Get = %q, want the Put object", got)
		}
	})
	t.Run("from file", func(t *testing.T) {
		f, err := os.CreateTemp(t.TempDir(), "create")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("from a file"); err != nil {
			t.Fatal(err)
		}
		for _, want := range []error{nil, storage.ErrExist} {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if err := s.Create(t.Context(), "create/file", f); !errors.Is(err, want) {
				t.Fatalf("Create from a file = %v, want %v", err, want)
			}
		}
		if got := mustGet(t, s, "create/file"); string(got) != "from a file" {
			t.Errorf("Get = %q", got)
		}
	})
	if keys := listKeys(t, s, ""); len(keys) != len(tests)+2 {
		t.Errorf("List = %q, want %d objects and nothing else", keys, len(tests)+2)
	}
}

// testCreateFailingReader checks that a Create whose reader fails, or
// whose context ends, leaves no object, so a later Create succeeds.
func testCreateFailingReader(t *testing.T, s storage.Storage) {
	errRead := errors.New("source failed")
	data := randomBytes(17*mib, 5)
	for i, n := range []int{0, 100, 12 * mib} {
		key := fmt.Sprintf("createfail/%d", i)
		if err := s.Create(t.Context(), key, &failingReader{data: data, n: n, err: errRead}); !errors.Is(err, errRead) {
			t.Fatalf("Create failing after %d bytes = %v, want the reader's error", n, err)
		}
		assertAbsent(t, s, key)
		ctx, cancel := context.WithCancel(t.Context())
		err := s.Create(ctx, key, &cancellingReader{data: data, n: n, cancel: cancel})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Create cancelled after %d bytes = %v, want context.Canceled", n, err)
		}
		assertAbsent(t, s, key)
		if err := s.Create(t.Context(), key, bytes.NewReader(data[:1000])); err != nil {
			t.Fatalf("Create after failed ones: %v", err)
		}
	}
}

// testCreateConcurrent races goroutines creating one key, several times:
// exactly one wins each race, every other sees ErrExist, and the object is
// the winner's. (cmd/pitr's tests race processes.)
func testCreateConcurrent(t *testing.T, s storage.Storage) {
	const racers = 8
	for round := range 4 {
		key := fmt.Sprintf("race/%d", round)
		var mu sync.Mutex
		winners, exist := []int{}, 0
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				err := s.Create(t.Context(), key, bytes.NewReader(randomBytes(64<<10+i, uint64(i))))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, i)
				case errors.Is(err, storage.ErrExist):
					exist++
				default:
					t.Errorf("racing Create: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 || exist != racers-1 {
			t.Fatalf("round %d: %d winners (%v), %d saw ErrExist; want 1 and %d", round, len(winners), winners, exist, racers-1)
		}
		if got := mustGet(t, s, key); !bytes.Equal(got, randomBytes(64<<10+winners[0], uint64(winners[0]))) {
			t.Errorf("round %d: the object is not the winner's", round)
		}
	}
	if keys := listKeys(t, s, ""); len(keys) != 4 {
		t.Errorf("List = %q, want the 4 objects only", keys)
	}
}

func testGetRange(t *testing.T, s storage.Storage) {
	data := randomBytes(100_000, 9)
	mustPut(t, s, "range/obj", data)
	mustPut(t, s, "range/empty", nil)
	tests := []struct {
		key            string
		offset, length int64
		want           []byte
	}{
		{"range/obj", 0, 10, data[:10]},
		{"range/obj", 0, -1, data},
		{"range/obj", 0, int64(len(data)), data},
		{"range/obj", 12345, 1000, data[12345:13345]},
		{"range/obj", 12345, -1, data[12345:]},
		{"range/obj", int64(len(data)) - 7, 7, data[len(data)-7:]},
		{"range/obj", int64(len(data)) - 7, 100, data[len(data)-7:]},
		{"range/obj", int64(len(data)) - 1, -1, data[len(data)-1:]},
		{"range/obj", 500, 0, nil},
		{"range/obj", int64(len(data)), 10, nil},
		{"range/obj", int64(len(data)), -1, nil},
		{"range/obj", int64(len(data)) + 1000, 5, nil},
		{"range/empty", 0, -1, nil},
		{"range/empty", 0, 10, nil},
	}
	for _, tt := range tests {
		rc, err := s.GetRange(t.Context(), tt.key, tt.offset, tt.length)
		if err != nil {
			t.Errorf("GetRange(%s, %d, %d): %v", tt.key, tt.offset, tt.length, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Errorf("GetRange(%s, %d, %d): read: %v", tt.key, tt.offset, tt.length, err)
			continue
		}
		if !bytes.Equal(got, tt.want) {
			t.Errorf("GetRange(%s, %d, %d) returned %d bytes, want %d", tt.key, tt.offset, tt.length, len(got), len(tt.want))
		}
	}
	for _, length := range []int64{-1, 0, 10} {
		if rc, err := s.GetRange(t.Context(), "range/missing", 0, length); !errors.Is(err, storage.ErrNotExist) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("GetRange of a missing key, length %d = %v, want ErrNotExist", length, err)
		}
	}
	for _, r := range [][2]int64{{-1, 10}, {0, -2}} {
		if rc, err := s.GetRange(t.Context(), "range/obj", r[0], r[1]); err == nil || errors.Is(err, storage.ErrNotExist) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("GetRange(offset %d, length %d) = %v, want an invalid range error", r[0], r[1], err)
		}
	}
}
