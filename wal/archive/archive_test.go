package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/retry"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

const testSegSize = 1 << 20 // the smallest wal_segment_size keeps tests fast

type fixture struct {
	t      testing.TB
	pgwal  string
	store  storage.Storage
	codec  *envelope.Codec
	pushed map[string][]byte
}

func newFixture(t testing.TB, st storage.Storage) *fixture {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if st == nil {
		st = storagetest.NewMemory()
		if err := repo.New(st, nil).Ensure(t.Context(), "test"); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.MkdirAll(filepath.Join(dir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, pgwal: dir, store: st, pushed: map[string][]byte{},
		codec: &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}}}
}

// segment writes a WAL file with partly random content and marks it .ready.
func (f *fixture) segment(name string) string {
	f.t.Helper()
	b := make([]byte, testSegSize)
	rand.Read(b[:4096])
	copy(b[4096:], name)
	return f.write(name, b)
}

func (f *fixture) write(name string, b []byte) string {
	f.t.Helper()
	p := filepath.Join(f.pgwal, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.pgwal, "archive_status", name+".ready"), nil, 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.pushed[name] = b
	return p
}

func (f *fixture) pushOpts(concurrency int) PushOptions {
	return PushOptions{Store: f.store, Codec: f.codec, Concurrency: concurrency, RepoID: "mem", Version: "test"}
}

func (f *fixture) fetchOpts() FetchOptions {
	return FetchOptions{Store: f.store, Codec: f.codec}
}

func (f *fixture) push(name string) PushResult {
	f.t.Helper()
	return f.pushN(name, 1)
}

// pushN runs Push as the archiver would, renaming .ready to .done on success.
func (f *fixture) pushN(name string, concurrency int) PushResult {
	f.t.Helper()
	res, err := Push(f.t.Context(), filepath.Join(f.pgwal, name), f.pushOpts(concurrency))
	if err != nil {
		f.t.Fatalf("push %s: %v", name, err)
	}
	status := filepath.Join(f.pgwal, "archive_status", name)
	if err := os.Rename(status+".ready", status+".done"); err != nil && !os.IsNotExist(err) {
		f.t.Fatal(err)
	}
	return res
}

func TestPushFetchRoundTrip(t *testing.T) {
	f := newFixture(t, nil)
	names := []string{"000000010000000000000001", "00000002.history", "000000010000000000000002.00000028.backup", "000000010000000000000003.partial"}
	for _, n := range names {
		if strings.HasSuffix(n, ".history") || strings.HasSuffix(n, ".backup") {
			f.write(n, []byte("1\t0/3000000\tbefore 2026-11-22\n"))
		} else {
			f.segment(n)
		}
		res := f.push(n)
		if res.Stored == 0 || res.Existed {
			t.Fatalf("push %s: %+v", n, res)
		}
	}
	restore := t.TempDir()
	for _, n := range names {
		dest := filepath.Join(restore, "RECOVERYXLOG")
		if err := Fetch(t.Context(), n, dest, f.fetchOpts()); err != nil {
			t.Fatalf("fetch %s: %v", n, err)
		}
		got, _ := os.ReadFile(dest)
		if !bytes.Equal(got, f.pushed[n]) {
			t.Fatalf("fetch %s: content differs", n)
		}
	}
}

func TestPushDuplicate(t *testing.T) {
	f := newFixture(t, nil)
	p := f.segment("000000010000000000000001")
	f.push("000000010000000000000001")
	if res := f.push("000000010000000000000001"); !res.Existed {
		t.Fatalf("same content pushed again: %+v, want Existed", res)
	}
	// Different content under the same name is refused, the stored copy kept.
	other := bytes.Clone(f.pushed["000000010000000000000001"])
	other[100] ^= 0xff
	if err := os.WriteFile(p, other, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Push(t.Context(), p, f.pushOpts(1))
	if !errors.Is(err, wal.ErrConflict) {
		t.Fatalf("different content: err = %v, want wal.ErrConflict", err)
	}
	objs, _ := wal.ListWAL(t.Context(), f.store, "000000010000000000000001")
	if len(objs) != 1 {
		t.Fatalf("%d objects stored, want 1", len(objs))
	}
	dest := filepath.Join(t.TempDir(), "x")
	if err := Fetch(t.Context(), "000000010000000000000001", dest, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, f.pushed["000000010000000000000001"]) {
		t.Fatal("stored copy was replaced")
	}
}

func TestHistoryNeverOverwritten(t *testing.T) {
	f := newFixture(t, nil)
	f.write("00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	f.push("00000002.history")
	f.write("00000002.history", []byte("1\t0/4000000\tno recovery target specified\n"))
	if _, err := Push(t.Context(), filepath.Join(f.pgwal, "00000002.history"), f.pushOpts(1)); !errors.Is(err, wal.ErrConflict) {
		t.Fatalf("err = %v, want wal.ErrConflict", err)
	}
}

func TestPushLookAhead(t *testing.T) {
	f := newFixture(t, nil)
	var names []string
	for i := 1; i <= 6; i++ {
		n := wal.SegmentFileName(1, uint64(i), testSegSize)
		f.segment(n)
		names = append(names, n)
	}
	if res := f.pushN(names[0], 4); res.LookAhead != 3 {
		t.Fatalf("push with look-ahead: %+v; want 3 ahead", res)
	}
	// PostgreSQL's status files are never touched by look-ahead.
	for _, n := range names[1:] {
		if _, err := os.Stat(filepath.Join(f.pgwal, "archive_status", n+".ready")); err != nil {
			t.Fatalf("%s.ready: %v", n, err)
		}
	}
	for _, n := range names[1:4] {
		if res := f.pushN(n, 4); !res.Acked {
			t.Fatalf("push %s: %+v; want acknowledged", n, res)
		}
	}
	// An ack is trusted only for the same file: a rewritten file is pushed
	// again (and here conflicts, because its content changed).
	if res := f.pushN(names[4], 2); res.LookAhead != 1 {
		t.Fatalf("push %s: %+v; want 1 ahead", names[4], res)
	}
	time.Sleep(10 * time.Millisecond)
	changed := bytes.Clone(f.pushed[names[5]])
	changed[0] ^= 1
	if err := os.WriteFile(filepath.Join(f.pgwal, names[5]), changed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(t.Context(), filepath.Join(f.pgwal, names[5]), f.pushOpts(2)); !errors.Is(err, wal.ErrConflict) {
		t.Fatalf("changed file after ack: err = %v, want wal.ErrConflict", err)
	}
	os.Remove(filepath.Join(f.pgwal, "archive_status", names[5]+".ready"))
	// An ack whose object vanished from the repository is not trusted.
	f.segment(wal.SegmentFileName(1, 7, testSegSize))
	f.segment(wal.SegmentFileName(1, 8, testSegSize))
	f.pushN(wal.SegmentFileName(1, 7, testSegSize), 2)
	objs, _ := wal.ListWAL(t.Context(), f.store, wal.SegmentFileName(1, 8, testSegSize))
	if len(objs) != 1 {
		t.Fatalf("look-ahead stored %d objects", len(objs))
	}
	if err := f.store.Delete(t.Context(), objs[0].Key); err != nil {
		t.Fatal(err)
	}
	if res := f.pushN(wal.SegmentFileName(1, 8, testSegSize), 1); res.Acked || res.Stored == 0 {
		t.Fatalf("push after lost object: %+v; want a fresh upload", res)
	}
}

func TestPushStorageDown(t *testing.T) {
	faulty := storagetest.NewFaulty(storagetest.NewMemory())
	f := newFixture(t, faulty)
	p := f.segment("000000010000000000000001")
	faulty.SetDown(true)
	if _, err := Push(t.Context(), p, f.pushOpts(1)); err == nil {
		t.Fatal("push succeeded with storage down")
	}
	faulty.SetDown(false)
	if res, err := Push(t.Context(), p, f.pushOpts(1)); err != nil || res.Stored == 0 {
		t.Fatalf("push after storage came back: %+v, %v", res, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.pgwal, "pitr", "tmp")); len(entries) != 0 {
		t.Fatalf("spool temp files left behind: %v", entries)
	}
}

func TestFetchMissing(t *testing.T) {
	f := newFixture(t, nil)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	err := Fetch(t.Context(), "000000010000000000000009", dest, f.fetchOpts())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	// Storage that cannot answer is not "not found".
	faulty := storagetest.NewFaulty(storagetest.NewMemory())
	faulty.SetDown(true)
	f2 := newFixture(t, faulty)
	opts := f2.fetchOpts()
	opts.Retry.Timeout = 300 * time.Millisecond
	err = Fetch(t.Context(), "000000010000000000000009", dest, opts)
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("storage down: err = %v, want a failure that is not ErrNotFound", err)
	}
}

func TestFetchWrongKeyAndTampered(t *testing.T) {
	f := newFixture(t, nil)
	name := "000000010000000000000001"
	f.segment(name)
	res := f.push(name)
	dir := t.TempDir()
	dest := filepath.Join(dir, "RECOVERYXLOG")

	other, _ := age.GenerateX25519Identity()
	opts := f.fetchOpts()
	opts.Codec = &envelope.Codec{Encrypt: true, Identities: []age.Identity{other}}
	if err := Fetch(t.Context(), name, dest, opts); !errors.Is(err, crypto.ErrWrongKey) {
		t.Fatalf("wrong key: err = %v", err)
	}
	assertEmptyDir(t, dir)

	tamper(t, f.store, res.Key, func(b []byte) { b[len(b)/2] ^= 1 })
	err := Fetch(t.Context(), name, dest, f.fetchOpts())
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("tampered: err = %v", err)
	}
	assertEmptyDir(t, dir)
}

// prefetchOnce is one pass of the resident prefetcher: the n segments
// after `after` downloaded into dir.
func prefetchOnce(ctx context.Context, after string, segSize int64, n int, dir string, opts FetchOptions) error {
	cur, err := wal.ParseName(after)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	_, err = newPrefetcher(segSize, n, dir, opts).fill(ctx, cur)
	return err
}

// pushSegments makes and pushes segments 1..n of timeline 1.
func (f *fixture) pushSegments(n int) []string {
	var names []string
	for i := 1; i <= n; i++ {
		name := wal.SegmentFileName(1, uint64(i), testSegSize)
		f.segment(name)
		f.push(name)
		names = append(names, name)
	}
	return names
}

func TestPrefetch(t *testing.T) {
	f := newFixture(t, nil)
	names := f.pushSegments(5)
	pdir := filepath.Join(t.TempDir(), "prefetch")
	opts := f.fetchOpts()
	opts.PrefetchDir, opts.Prefetch = pdir, 3
	opts.StartPrefetch = func(after string, segSize int64) error {
		return prefetchOnce(context.Background(), after, segSize, opts.Prefetch, pdir, opts)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if err := Fetch(t.Context(), names[0], dest, opts); err != nil {
		t.Fatal(err)
	}
	entries, _ := filepath.Glob(filepath.Join(pdir, "0*"))
	if len(entries) != 3 {
		t.Fatalf("prefetched %d files, want 3: %v", len(entries), entries)
	}
	// A truncated prefetched copy is rejected and fetched again.
	matches, _ := filepath.Glob(filepath.Join(pdir, names[1]+".*"))
	if err := os.WriteFile(matches[0], []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range names[1:] {
		if err := Fetch(t.Context(), n, dest, opts); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, f.pushed[n]) {
			t.Fatalf("%s: content differs", n)
		}
	}
	// Past the end of the archive: not found, nothing stale left behind.
	if err := Fetch(t.Context(), wal.SegmentFileName(1, 6, testSegSize), dest, opts); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

// TestPrefetchResident: one prefetcher for a whole recovery keeps the
// window after the segment last asked for filled, follows .wanted, is
// started once (a second one returns at once: the lock), and stops when
// While says the recovering process is gone.
func TestPrefetchResident(t *testing.T) {
	f := newFixture(t, nil)
	names := f.pushSegments(8)
	pdir := filepath.Join(t.TempDir(), "prefetch")
	opts := f.fetchOpts()
	opts.PrefetchDir, opts.Prefetch = pdir, 2
	var alive atomic.Bool
	alive.Store(true)
	opts.While = alive.Load
	var started atomic.Int32
	done := make(chan error, 2)
	opts.StartPrefetch = func(after string, segSize int64) error {
		started.Add(1)
		go func() { done <- PrefetchResident(context.Background(), after, segSize, opts.Prefetch, pdir, opts) }()
		return nil
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	for i, n := range names {
		if err := Fetch(t.Context(), n, dest, opts); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, f.pushed[n]) {
			t.Fatalf("%s: content differs", n)
		}
		// The window after n fills (up to the end of the archive).
		want := names[i+1 : min(i+3, len(names))]
		testenv.Eventually(t, 5*time.Second, func() (bool, string) {
			for _, w := range want {
				if m, _ := filepath.Glob(filepath.Join(pdir, w+".*.*")); len(m) != 1 {
					return false, "no prefetched " + w
				}
			}
			return true, ""
		})
	}
	if n := started.Load(); n != 1 {
		t.Errorf("started %d prefetchers, want 1", n)
	}
	// Another prefetcher for the directory returns at once.
	if err := PrefetchResident(t.Context(), names[0], testSegSize, 2, pdir, opts); err != nil {
		t.Fatal(err)
	}
	alive.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("prefetcher still running after its recovery process ended")
	}
}

// TestPrefetchedOtherBoot: a prefetched copy tagged with another boot's id
// may never have reached the disk before a crash: it is removed unread
// and the segment fetched from the repository.
func TestPrefetchedOtherBoot(t *testing.T) {
	if bootTag() == "" {
		t.Skip("no boot id on this system: prefetched copies are fsynced instead")
	}
	f := newFixture(t, nil)
	n := wal.SegmentFileName(1, 1, testSegSize)
	f.segment(n)
	f.push(n)
	pdir := filepath.Join(t.TempDir(), "prefetch")
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(pdir, n+"."+sha(f.pushed[n])+"."+strings.Repeat("0", 32))
	if err := os.WriteFile(stale, make([]byte, testSegSize), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := f.fetchOpts()
	opts.PrefetchDir = pdir
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if err := Fetch(t.Context(), n, dest, opts); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, f.pushed[n]) {
		t.Fatal("restored the other boot's copy")
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("other boot's copy left: %v", err)
	}
}

func tamper(t *testing.T, st storage.Storage, key string, fn func([]byte)) {
	t.Helper()
	rc, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	fn(b)
	if err := st.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("%s not empty after failed fetch: %v", dir, entries)
	}
}

// unlisted hides WAL from List, as when another push of the same file
// stores it between this push's listing and its upload.
type unlisted struct{ storage.Storage }

func (u unlisted) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if strings.HasPrefix(prefix, "wal/") {
		return nil
	}
	return u.Storage.List(ctx, prefix, fn)
}

// TestPushRaceSameContent: a push whose create-only upload finds the same
// content stored under its key (ErrExist) succeeds, storing nothing.
func TestPushRaceSameContent(t *testing.T) {
	f := newFixture(t, nil)
	f.segment("000000010000000000000001")
	first := f.push("000000010000000000000001")
	f.store = unlisted{f.store}
	res, err := Push(t.Context(), filepath.Join(f.pgwal, "000000010000000000000001"), f.pushOpts(1))
	if err != nil {
		t.Fatalf("push racing the same content: %v", err)
	}
	if !res.Existed || res.Stored != 0 || res.Key != first.Key {
		t.Errorf("push racing the same content = %+v, want Existed under %s", res, first.Key)
	}
}

// TestStoreSealedRace: wal-receive storing a file whose create-only put
// finds the same content (another receiver, or its own retried write)
// succeeds without storing anything.
func TestStoreSealedRace(t *testing.T) {
	f := newFixture(t, nil)
	data := []byte("1\t0/3000000\tno recovery target specified\n")
	first, err := repo.New(f.store, f.codec).StoreWAL(t.Context(), "00000002.history", data)
	if err != nil || first.Existed {
		t.Fatalf("first store: %+v, %v", first, err)
	}
	sealed, err := repo.New(nil, f.codec).Seal(data)
	if err != nil {
		t.Fatal(err)
	}
	res, err := repo.New(unlisted{f.store}, f.codec).StoreSealedWAL(t.Context(), "00000002.history", sealed)
	if err != nil || !res.Existed || res.Key != first.Key || res.Stored != 0 {
		t.Errorf("store racing the same content = %+v, %v; want Existed under %s", res, err, first.Key)
	}
}

// TestFetchMissingCheckRetried: a transient error while confirming the
// repository for a missing file is retried, so the answer is still "not in
// the archive" (exit 1), not a failure that stops recovery.
func TestFetchMissingCheckRetried(t *testing.T) {
	mem := storagetest.NewMemory()
	if err := repo.New(mem, nil).Ensure(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	faulty := storagetest.NewFaulty(mem)
	f := newFixture(t, faulty)
	opts := f.fetchOpts()
	opts.Retry = retry.Policy{Timeout: time.Minute, Initial: time.Millisecond, Max: 2 * time.Millisecond}
	faulty.Fail(storagetest.OpGet, 1, errors.New("connection reset"))
	err := Fetch(t.Context(), "000000010000000000000009", filepath.Join(t.TempDir(), "RECOVERYXLOG"), opts)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch = %v, want ErrNotFound", err)
	}
}
