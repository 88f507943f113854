package copy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

var now = time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)

func put(t *testing.T, st storage.Storage, key string, data []byte) {
	t.Helper()
	if err := st.Create(t.Context(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// fixture is a source repository with every kind of object: the marker,
// a binding, WAL, a backup, a dump and a file snapshot with a pack and
// its index.
type fixture struct {
	src     *storagetest.Memory
	entries []string          // entry keys
	refs    map[string]string // entry key -> an object it names
	packs   []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{src: storagetest.NewMemory(), refs: map[string]string{}}
	st := f.src
	put(t, st, catalog.MarkerKey, catalog.MarshalMarker(now, "test"))
	bk, _ := catalog.BindingKey(1, "7301234567890123456")
	put(t, st, bk, catalog.MarshalBinding(catalog.Binding{Seq: 1, SystemID: "7301234567890123456", Bound: now}))
	for i := 1; i <= 5; i++ {
		data := bytes.Repeat([]byte{byte(i)}, 1000+i)
		k, err := catalog.WALKey(fmt.Sprintf("0000000100000000000000%02X", i), sum(data), true)
		if err != nil {
			t.Fatal(err)
		}
		put(t, st, k, data)
	}
	id := catalog.BackupID(now)
	rk, _ := catalog.BackupReservationKey(id)
	put(t, st, rk, []byte(`{"id":"`+id+`"}`))
	b := &catalog.Backup{ID: id, Format: catalog.FormatVersion, StartWAL: "000000010000000000000002", EndWAL: "000000010000000000000003", Encrypted: true}
	for _, name := range []string{"base.tar", "backup_manifest"} {
		data := []byte(strings.Repeat(name, 300))
		k, _ := catalog.BackupPartKey(id, name, true)
		put(t, st, k, data)
		b.Parts = append(b.Parts, catalog.Part{Name: name, Key: k, SHA256: sum(data)})
	}
	put(t, st, catalog.BackupEntryKey(id), catalog.MarshalBackup(b))
	f.entries = append(f.entries, catalog.BackupEntryKey(id))
	f.refs[catalog.BackupEntryKey(id)] = b.Parts[0].Key

	dk, _ := catalog.DumpObjectKey("app", id, true)
	put(t, st, dk, []byte("dump archive"))
	d := &catalog.Dump{ID: id, Format: catalog.FormatVersion, Database: "app", Key: dk, Encrypted: true, SHA256: sum([]byte("x"))}
	de, _ := catalog.DumpEntryKey("app", id)
	put(t, st, de, catalog.MarshalDump(d))
	f.entries = append(f.entries, de)
	f.refs[de] = dk

	pack := bytes.Repeat([]byte("sealed chunk "), 500)
	pk, _ := catalog.PackKey(sum(pack))
	put(t, st, pk, pack)
	f.packs = append(f.packs, pk)
	ix := catalog.MarshalPackIndex(&catalog.PackIndex{Format: 1, Pack: sum(pack), Size: int64(len(pack)), Blobs: []catalog.Blob{{ID: sum([]byte("c")), Offset: 0, Length: int64(len(pack)), Size: 10}}})
	ik, _ := catalog.IndexKey(sum(ix))
	put(t, st, ik, ix)
	f.packs = append(f.packs, ik)
	mk, _ := catalog.ManifestKey("media", id, true)
	put(t, st, mk, []byte("sealed manifest"))
	s := &catalog.Snapshot{ID: id, Format: 1, Set: "media", Kind: "uploads", Encrypted: true, Manifest: catalog.Part{Name: "manifest", Key: mk, SHA256: sum([]byte("m"))}}
	sk, _ := catalog.SnapshotEntryKey("media", id)
	put(t, st, sk, catalog.MarshalSnapshot(s))
	f.entries = append(f.entries, sk)
	f.refs[sk] = mk
	return f
}

func keys(t *testing.T, st storage.Storage) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := st.List(t.Context(), "", func(o storage.ObjectInfo) error {
		rc, err := st.Get(t.Context(), o.Key)
		if err != nil {
			return err
		}
		defer rc.Close()
		out[o.Key], err = io.ReadAll(rc)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertSame(t *testing.T, src, dst storage.Storage) {
	t.Helper()
	a, b := keys(t, src), keys(t, dst)
	for k, v := range a {
		if !bytes.Equal(b[k], v) {
			t.Errorf("target %s: %d bytes, want the source's %d", k, len(b[k]), len(v))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !strings.HasPrefix(k, QuarantinePrefix) {
			t.Errorf("target has %s, which the source lacks", k)
		}
	}
}

func run(t *testing.T, opts Options) *Result {
	t.Helper()
	opts.Now = func() time.Time { return now }
	res, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestCopyEverythingThenNothing(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewMemory()
	res := run(t, Options{Source: f.src, Target: dst})
	assertSame(t, f.src, dst)
	all := len(keys(t, f.src))
	if got := Total(res.Copied).Objects; got != int64(all) {
		t.Errorf("copied %d objects, want %d", got, all)
	}
	if res.Copied[KindWAL].Objects != 5 || res.Copied[KindFiles].Objects != 4 || res.Copied[KindDumps].Objects != 2 || res.Copied[KindBackups].Objects != 4 {
		t.Errorf("copied by kind: %+v", res.Copied)
	}
	res = run(t, Options{Source: f.src, Target: dst, Verify: true})
	if c, s := Total(res.Copied).Objects, Total(res.Skipped).Objects; c != 0 || s != int64(all) {
		t.Errorf("second run copied %d, skipped %d; want 0 and %d", c, s, all)
	}
}

// recorder checks the target's whole listing after every Create: an
// entry is never listed before what it names, nor before every pack.
type recorder struct {
	storage.Storage
	t      *testing.T
	f      *fixture
	mu     sync.Mutex
	first  string // the first entry created
	before int    // creates before it
	n      int
}

func (r *recorder) Create(ctx context.Context, key string, rd io.Reader) error {
	err := r.Storage.Create(ctx, key, rd)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	listed := map[string]bool{}
	_ = r.List(ctx, "", func(o storage.ObjectInfo) error { listed[o.Key] = true; return nil })
	for _, e := range r.f.entries {
		if !listed[e] {
			continue
		}
		if r.first == "" {
			r.first, r.before = e, r.n-1
		}
		if !listed[r.f.refs[e]] {
			r.t.Errorf("target lists %s before %s", e, r.f.refs[e])
		}
		for _, p := range r.f.packs {
			if !listed[p] {
				r.t.Errorf("target lists %s before %s", e, p)
			}
		}
	}
	return err
}

func TestEntriesLast(t *testing.T) {
	f := newFixture(t)
	rec := &recorder{Storage: storagetest.NewMemory(), t: t, f: f}
	run(t, Options{Source: f.src, Target: rec, Workers: 3})
	all := len(keys(t, f.src))
	if want := all - len(f.entries); rec.before != want {
		t.Errorf("first entry %s created after %d objects, want after all %d others", rec.first, rec.before, want)
	}
}

// killer cancels the run after n creates, like a kill -9 midway.
type killer struct {
	storage.Storage
	mu     sync.Mutex
	n      int
	cancel context.CancelFunc
}

func (k *killer) Create(ctx context.Context, key string, rd io.Reader) error {
	k.mu.Lock()
	k.n--
	dead := k.n < 0
	k.mu.Unlock()
	if dead {
		k.cancel()
		return context.Canceled
	}
	return k.Storage.Create(ctx, key, rd)
}

func TestInterruptedCopyResumes(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewMemory()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := Run(ctx, Options{Source: f.src, Target: &killer{Storage: dst, n: 7, cancel: cancel}, Workers: 1})
	if err == nil {
		t.Fatal("interrupted copy reported success")
	}
	got := keys(t, dst)
	if len(got) != 7 {
		t.Fatalf("interrupted copy stored %d objects, want 7", len(got))
	}
	for _, e := range f.entries {
		if _, ok := got[e]; ok {
			t.Errorf("interrupted copy stored entry %s", e)
		}
	}
	res := run(t, Options{Source: f.src, Target: dst})
	assertSame(t, f.src, dst)
	all := int64(len(keys(t, f.src)))
	if c, s := Total(res.Copied).Objects, Total(res.Skipped).Objects; c != all-7 || s != 7 {
		t.Errorf("rerun copied %d, skipped %d; want %d and 7", c, s, all-7)
	}
}

func TestDamagedTargetObjectCopiedAgain(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewMemory()
	run(t, Options{Source: f.src, Target: dst})
	wal := ""
	for k := range keys(t, f.src) {
		if strings.HasPrefix(k, "wal/") {
			wal = k
			break
		}
	}
	good := keys(t, dst)[wal]
	bad := bytes.Repeat([]byte{0xff}, len(good)) // same size: only content shows it
	if err := dst.Put(t.Context(), wal, bytes.NewReader(bad)); err != nil {
		t.Fatal(err)
	}
	res := run(t, Options{Source: f.src, Target: dst})
	if Total(res.Copied).Objects != 0 {
		t.Fatalf("without --verify a same-size object was copied: %+v", res.Copied)
	}
	dry := run(t, Options{Source: f.src, Target: dst, Verify: true, DryRun: true})
	if dry.Damaged[KindWAL].Objects != 1 {
		t.Fatalf("dry run with verify: damaged %+v, want 1 wal", dry.Damaged)
	}
	res = run(t, Options{Source: f.src, Target: dst, Verify: true})
	if res.Repaired[KindWAL].Objects != 1 || Total(res.Copied).Objects != 1 {
		t.Fatalf("verify: repaired %+v, copied %+v; want 1 wal", res.Repaired, res.Copied)
	}
	assertSame(t, f.src, dst)
	q := keys(t, dst)[QuarantinePrefix+"20261201T103000Z/"+wal]
	if !bytes.Equal(q, bad) {
		t.Errorf("quarantined copy holds %d bytes, want the damaged %d", len(q), len(bad))
	}

	// A truncated object is found by its size, without --verify.
	if err := dst.Put(t.Context(), wal, bytes.NewReader(good[:10])); err != nil {
		t.Fatal(err)
	}
	res = run(t, Options{Source: f.src, Target: dst, Now: func() time.Time { return now.Add(time.Second) }})
	if res.Repaired[KindWAL].Objects != 1 {
		t.Fatalf("truncated object: repaired %+v", res.Repaired)
	}
	assertSame(t, f.src, dst)
}

func TestDamagedSourcePackLeavesTarget(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewMemory()
	run(t, Options{Source: f.src, Target: dst})
	pk := f.packs[0]
	good := keys(t, dst)[pk]
	if err := f.src.Put(t.Context(), pk, bytes.NewReader(good[:100])); err != nil {
		t.Fatal(err)
	}
	_, err := Run(t.Context(), Options{Source: f.src, Target: dst})
	if err == nil || !strings.Contains(err.Error(), "damaged in the source") {
		t.Fatalf("source pack not matching its key: %v", err)
	}
	if !bytes.Equal(keys(t, dst)[pk], good) {
		t.Error("the target's good pack was replaced")
	}
}

func TestDryRun(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewMemory()
	res := run(t, Options{Source: f.src, Target: dst, DryRun: true})
	if n := len(keys(t, dst)); n != 0 {
		t.Fatalf("dry run wrote %d objects", n)
	}
	var walBytes int64
	for k, v := range keys(t, f.src) {
		if strings.HasPrefix(k, "wal/") {
			walBytes += int64(len(v))
		}
	}
	if got := res.Behind[KindWAL]; got.Objects != 5 || got.Bytes != walBytes {
		t.Errorf("wal behind %+v, want 5 objects %d bytes", got, walBytes)
	}
	if got, want := Total(res.Behind).Objects, int64(len(keys(t, f.src))); got != want {
		t.Errorf("behind %d objects, want %d", got, want)
	}
	// No target at all (a directory not made yet): everything is behind.
	res = run(t, Options{Source: f.src, DryRun: true})
	if got, want := Total(res.Behind).Objects, int64(len(keys(t, f.src))); got != want {
		t.Errorf("no target: behind %d objects, want %d", got, want)
	}
}

func TestHeldEntry(t *testing.T) {
	f := newFixture(t)
	part := f.refs[f.entries[0]]
	if err := f.src.Delete(t.Context(), part); err != nil {
		t.Fatal(err)
	}
	dst := storagetest.NewMemory()
	_, err := Run(t.Context(), Options{Source: f.src, Target: dst})
	if err == nil || !strings.Contains(err.Error(), "1 entries not copied") {
		t.Fatalf("entry with a missing part: %v", err)
	}
	got := keys(t, dst)
	if _, ok := got[f.entries[0]]; ok {
		t.Errorf("target lists %s without %s", f.entries[0], part)
	}
	for _, e := range f.entries[1:] {
		if _, ok := got[e]; !ok {
			t.Errorf("entry %s not copied", e)
		}
	}
}

func TestOtherRepositoryRefused(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewMemory()
	other, _ := catalog.BindingKey(1, "7409876543210987654")
	put(t, dst, other, []byte("{}"))
	_, err := Run(t.Context(), Options{Source: f.src, Target: dst})
	if !errors.Is(err, ErrOtherRepository) {
		t.Fatalf("target of another cluster: %v", err)
	}
	dst = storagetest.NewMemory()
	put(t, dst, catalog.MarkerKey, []byte(`{"format": 2}`))
	_, err = Run(t.Context(), Options{Source: f.src, Target: dst})
	if !errors.Is(err, ErrOtherRepository) {
		t.Fatalf("target of another format: %v", err)
	}
	if n := len(keys(t, dst)); n != 1 {
		t.Errorf("refused copy wrote %d objects", n-1)
	}
}

func TestTransientErrorsRetried(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewFaulty(storagetest.NewMemory())
	dst.Fail(storagetest.OpCreate, 2, storagetest.ErrDown)
	src := storagetest.NewFaulty(f.src)
	src.Fail(storagetest.OpGet, 2, storagetest.ErrDown)
	res, err := Run(t.Context(), Options{Source: src, Target: dst, Retry: retryFast})
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, f.src, dst)
	if got, want := Total(res.Copied).Objects, int64(len(keys(t, f.src))); got != want {
		t.Errorf("copied %d, want %d", got, want)
	}
}

func TestFollowerCopiesOnKick(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewMemory()
	var mu sync.Mutex
	runs := 0
	fl := NewFollower(Options{Source: f.src, Target: dst}, time.Millisecond, func(_ *Result, err error) {
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		runs++
		mu.Unlock()
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- fl.Run(ctx) }()
	fl.Kick()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return runs >= 1, "no copy after a kick"
	})
	assertSame(t, f.src, dst)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var nilFollower *Follower
	nilFollower.Kick() // no off-site repository: a no-op
}

var retryFast = retryPolicy()

// breaking fails the first read of each object's body midway, like a
// connection lost during a download.
type breaking struct {
	storage.Storage
	mu   sync.Mutex
	seen map[string]bool
}

type brokenBody struct{ n int }

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, storagetest.ErrDown
	}
	k := min(len(p), b.n)
	b.n -= k
	return k, nil
}

func (b *breaking) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	b.mu.Lock()
	first := !b.seen[key]
	b.seen[key] = true
	b.mu.Unlock()
	if first && strings.HasPrefix(key, "wal/") {
		return io.NopCloser(&brokenBody{n: 100}), nil
	}
	return b.Storage.Get(ctx, key)
}

func TestBodyBrokenMidwayCopiedAgain(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewMemory()
	res, err := Run(t.Context(), Options{Source: &breaking{Storage: f.src, seen: map[string]bool{}}, Target: dst, Retry: retryFast})
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, f.src, dst)
	if res.Copied[KindWAL].Objects != 5 {
		t.Errorf("copied %+v, want 5 wal", res.Copied)
	}
}

// A copy made from a copy leaves the first copy's quarantine/ behind.
func TestQuarantineNotCopied(t *testing.T) {
	f := newFixture(t)
	put(t, f.src, QuarantinePrefix+"20261201T103000Z/wal/x", []byte("damaged"))
	dst := storagetest.NewMemory()
	run(t, Options{Source: f.src, Target: dst})
	if _, err := dst.Stat(t.Context(), QuarantinePrefix+"20261201T103000Z/wal/x"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("quarantine/ copied: %v", err)
	}
}

func TestProgressLogged(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var buf bytes.Buffer
	log := zerolog.New(&lockedWriter{mu: &mu, w: &buf})
	slow := &slowTarget{Storage: storagetest.NewMemory(), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := Run(log.WithContext(t.Context()), Options{Source: f.src, Target: slow, ProgressEvery: time.Millisecond})
		done <- err
	}()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(buf.String(), `"message":"copy progress"`), "no progress logged"
	})
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// slowTarget holds every Create until released.
type slowTarget struct {
	storage.Storage
	release chan struct{}
}

func (s *slowTarget) Create(ctx context.Context, key string, r io.Reader) error {
	<-s.release
	return s.Storage.Create(ctx, key, r)
}

// meter records what a job reports.
type meter struct {
	mu           sync.Mutex
	total, added int64
}

func (m *meter) SetTotal(n int64) { m.mu.Lock(); m.total = n; m.mu.Unlock() }
func (m *meter) Add(n int64)      { m.mu.Lock(); m.added += n; m.mu.Unlock() }
func (m *meter) Done()            {}

// TestCopyProgress: the meter's total is the bytes the target lacks, and
// it hears every byte copied; a second run has nothing to copy.
func TestCopyProgress(t *testing.T) {
	f := newFixture(t)
	dst := storagetest.NewMemory()
	var m meter
	run(t, Options{Source: f.src, Target: dst, Progress: &m})
	var want int64 // every object but the marker, which is written from the bytes read first
	for k, b := range keys(t, f.src) {
		if k != catalog.MarkerKey {
			want += int64(len(b))
		}
	}
	if m.total != want || m.added != want {
		t.Errorf("meter total %d, added %d; want %d for both", m.total, m.added, want)
	}
	var again meter
	run(t, Options{Source: f.src, Target: dst, Progress: &again})
	if again.total != 0 || again.added != 0 {
		t.Errorf("second run: meter total %d, added %d; want nothing to copy", again.total, again.added)
	}
}

// order records the keys created, in order.
type order struct {
	storage.Storage
	mu   sync.Mutex
	keys []string
}

func (o *order) Create(ctx context.Context, key string, rd io.Reader) error {
	err := o.Storage.Create(ctx, key, rd)
	o.mu.Lock()
	o.keys = append(o.keys, key)
	o.mu.Unlock()
	return err
}

// TestSealsAfterChunks: a streamed segment's seal is the segment to every
// reader, so a copy creates it only after every other object (its chunks
// among them): a copy cut short never leaves a seal without its chunks.
func TestSealsAfterChunks(t *testing.T) {
	f := newFixture(t)
	const seg = "000000010000000000000009"
	whole := bytes.Repeat([]byte("w"), 2000)
	seal := &catalog.Seal{Format: 1, Segment: seg, SegSize: 2000, SHA256: sum(whole)}
	for _, r := range [][2]int64{{0, 1000}, {1000, 2000}} {
		part := whole[r[0]:r[1]]
		k, err := catalog.StreamChunkKey(seg, r[0], r[1], 2000, sum(part), true)
		if err != nil {
			t.Fatal(err)
		}
		put(t, f.src, k, part)
		seal.Chunks = append(seal.Chunks, catalog.SealChunk{Key: k, Start: r[0], End: r[1]})
	}
	sk, err := catalog.SealKey(seg, sum(whole))
	if err != nil {
		t.Fatal(err)
	}
	put(t, f.src, sk, catalog.MarshalSeal(seal))
	dst := &order{Storage: storagetest.NewMemory()}
	run(t, Options{Source: f.src, Target: dst, Workers: 1})
	at := map[string]int{}
	for i, k := range dst.keys {
		at[k] = i
	}
	for _, c := range seal.Chunks {
		if at[c.Key] > at[sk] {
			t.Errorf("seal created at %d, before its chunk %s (%d)", at[sk], c.Key, at[c.Key])
		}
	}
	for k, i := range at {
		if !isEntry(k) && k != sk && i > at[sk] {
			t.Errorf("%s created after the seal", k)
		}
	}
	assertSame(t, f.src, dst)
}
