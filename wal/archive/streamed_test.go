package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// storeChunk stores seg[from:to] of segment name as wal-receive does.
func (f *fixture) storeChunk(name string, seg []byte, from, to int64) string {
	f.t.Helper()
	s, err := repo.New(nil, f.codec).Seal(seg[from:to])
	if err != nil {
		f.t.Fatal(err)
	}
	key, err := catalog.StreamChunkKey(name, from, to, int64(len(seg)), s.SHA256, f.codec.Encrypt)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.Put(f.t.Context(), key, bytes.NewReader(s.Body)); err != nil {
		f.t.Fatal(err)
	}
	return key
}

func TestCoverage(t *testing.T) {
	c := func(start, end int64) catalog.StreamChunk {
		return catalog.StreamChunk{Start: start, End: end, SegSize: 100}
	}
	tests := []struct {
		name   string
		chunks []catalog.StreamChunk
		end    int64
		used   int
	}{
		{"none", nil, 0, 0},
		{"contiguous", []catalog.StreamChunk{c(30, 60), c(0, 30), c(60, 70)}, 70, 3},
		{"overlap after a restart", []catalog.StreamChunk{c(0, 40), c(20, 50), c(50, 80)}, 80, 3},
		{"longest wins", []catalog.StreamChunk{c(0, 40), c(0, 90), c(40, 60)}, 90, 1},
		{"hole", []catalog.StreamChunk{c(0, 40), c(50, 80)}, 40, 1},
		{"not from zero", []catalog.StreamChunk{c(10, 40)}, 0, 0},
	}
	for _, tt := range tests {
		use, end := wal.Coverage(tt.chunks)
		if end != tt.end || len(use) != tt.used {
			t.Errorf("%s: end %d using %d chunks, want %d using %d", tt.name, end, len(use), tt.end, tt.used)
		}
	}
}

// TestFetchStreamed: a segment stored only as overlapping chunks is handed
// over as the bytes received, zero-padded; a whole segment wins over chunks;
// a tampered chunk is refused and leaves nothing.
func TestFetchStreamed(t *testing.T) {
	f := newFixture(t, nil)
	name := "000000010000000000000005"
	seg := make([]byte, testSegSize)
	rand.Read(seg[:300000])
	f.storeChunk(name, seg, 0, 100000)
	f.storeChunk(name, seg, 50000, 200000) // a receiver restarted before reporting
	tampered := f.storeChunk(name, seg, 200000, 300000)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")

	want := bytes.Clone(seg)
	if err := Fetch(t.Context(), name, dest, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
		t.Fatalf("assembled segment differs (%d bytes)", len(got))
	}

	tamper(t, f.store, tampered, func(b []byte) { b[len(b)-20] ^= 1 })
	os.Remove(dest)
	err := Fetch(t.Context(), name, dest, f.fetchOpts())
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("tampered chunk: %v", err)
	}
	if _, serr := os.Stat(dest); serr == nil {
		t.Fatal("tampered chunk: a file was handed over")
	}
	assertNoTemp(t, filepath.Dir(dest))

	// The whole segment arrives: it wins.
	f.write(name, seg)
	f.push(name)
	if err := Fetch(t.Context(), name, dest, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, seg) {
		t.Fatal("whole segment not preferred over chunks")
	}

	// Chunks that do not start at byte 0 are not a segment.
	other := "000000010000000000000006"
	f.storeChunk(other, seg, 4096, 8192)
	if err := Fetch(t.Context(), other, dest, f.fetchOpts()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("chunks from the middle: %v, want ErrNotFound", err)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name()[0] == '.' {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}

// TestChainEndsOnStreamedSegment: a restore chain may end on a segment
// stored only in part; a backup's end segment must be whole.
func TestChainEndsOnStreamedSegment(t *testing.T) {
	f := newFixture(t, nil)
	for _, n := range []string{"000000010000000000000001", "000000010000000000000002"} {
		f.segment(n)
		f.push(n)
	}
	seg := make([]byte, testSegSize)
	f.storeChunk("000000010000000000000003", seg, 0, 5000)
	ix, err := wal.LoadIndex(t.Context(), f.store)
	if err != nil {
		t.Fatal(err)
	}
	c := ix.Chain("000000010000000000000001", testSegSize)
	if c.Last != "000000010000000000000003" || !c.LastPartial || c.Missing != "000000010000000000000004" || c.MoreAfter {
		t.Fatalf("chain %+v", c)
	}
	if !c.CoversWhole("000000010000000000000002", testSegSize) || c.CoversWhole("000000010000000000000003", testSegSize) {
		t.Fatal("CoversWhole must exclude the streamed segment")
	}
	if e, ok := ix.Get("000000010000000000000003"); !ok || e.Partial != 5000 {
		t.Fatalf("Get streamed segment: %+v %v", e, ok)
	}
}

// TestChainCompleteChunks: chunks covering a whole segment make it whole.
func TestChainCompleteChunks(t *testing.T) {
	f := newFixture(t, nil)
	seg := make([]byte, testSegSize)
	rand.Read(seg)
	f.storeChunk("000000010000000000000001", seg, 0, 1000)
	f.storeChunk("000000010000000000000001", seg, 1000, testSegSize)
	f.segment("000000010000000000000002")
	f.push("000000010000000000000002")
	ix, err := wal.LoadIndex(t.Context(), f.store)
	if err != nil {
		t.Fatal(err)
	}
	c := ix.Chain("000000010000000000000001", testSegSize)
	if c.Last != "000000010000000000000002" || c.LastPartial || !c.CoversWhole("000000010000000000000001", testSegSize) {
		t.Fatalf("chain %+v", c)
	}
	dest := filepath.Join(t.TempDir(), "x")
	if err := Fetch(t.Context(), "000000010000000000000001", dest, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, seg) {
		t.Fatal("assembled segment differs")
	}
}

// storeSealed stores seg of segment name as wal-receive does now: chunks
// of n bytes, then a seal naming them. It returns the seal's and the
// chunks' keys.
func (f *fixture) storeSealed(name string, seg []byte, n int64) (string, []string) {
	f.t.Helper()
	s := &catalog.Seal{Format: catalog.FormatVersion, Segment: name, SegSize: int64(len(seg)), SHA256: sha(seg)}
	var keys []string
	for from := int64(0); from < int64(len(seg)); from += n {
		to := min(from+n, int64(len(seg)))
		key := f.storeChunk(name, seg, from, to)
		s.Chunks = append(s.Chunks, catalog.SealChunk{Key: key, Start: from, End: to})
		keys = append(keys, key)
	}
	key, err := catalog.SealKey(name, s.SHA256)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.Put(f.t.Context(), key, bytes.NewReader(catalog.MarshalSeal(s))); err != nil {
		f.t.Fatal(err)
	}
	return key, keys
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestFetchSealed: a sealed segment fetches byte-identical (and through
// prefetch), from the chunks listed without reading the seal; chunks of
// other bytes, a tampered chunk, a missing chunk, a damaged seal or one
// naming another SHA-256 than its key fail wal-fetch with ErrCorrupt and
// hand over nothing.
func TestFetchSealed(t *testing.T) {
	f := newFixture(t, nil)
	name := "000000010000000000000005"
	seg := make([]byte, testSegSize)
	rand.Read(seg)
	sealKey, chunks := f.storeSealed(name, seg, 100000)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if err := Fetch(t.Context(), name, dest, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, seg) {
		t.Fatalf("sealed segment differs (%d bytes)", len(got))
	}
	objs, _ := wal.ListWAL(t.Context(), f.store, name)
	if len(objs) != 1 || !objs[0].Seal || objs[0].SHA256 != sha(seg) {
		t.Fatalf("ListWAL of a sealed segment: %+v", objs)
	}

	// Prefetch reads sealed segments too.
	next := "000000010000000000000006"
	f.storeSealed(next, seg, 300000)
	pdir := filepath.Join(t.TempDir(), "prefetch")
	if err := prefetchOnce(t.Context(), name, testSegSize, 1, pdir, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(pdir, next+"."+sha(seg)+".*"))
	if len(m) != 1 {
		t.Fatalf("prefetched %v, want one copy of %s", m, next)
	}
	if got, _ := os.ReadFile(m[0]); !bytes.Equal(got, seg) {
		t.Fatal("prefetched sealed segment differs")
	}

	refused := func(what string) {
		t.Helper()
		os.Remove(dest)
		err := Fetch(t.Context(), name, dest, f.fetchOpts())
		if !errors.Is(err, wal.ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", what, err)
		}
		if _, serr := os.Stat(dest); serr == nil {
			t.Fatalf("%s: a file was handed over", what)
		}
		assertNoTemp(t, filepath.Dir(dest))
	}
	body := func() []byte {
		rc, err := f.store.Get(t.Context(), sealKey)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return b
	}
	good := body()
	put := func(key string, b []byte) {
		if err := f.store.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}

	// Chunks listed that cover the segment are read without the seal:
	// its content does not matter then (the key's SHA-256 does).
	put(sealKey, []byte("{not json"))
	if err := Fetch(t.Context(), name, dest, f.fetchOpts()); err != nil {
		t.Fatalf("seal damaged, chunks complete: %v", err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, seg) {
		t.Fatal("sealed segment differs")
	}

	// Chunks of other bytes in its place: each chunk is sound, the whole
	// is not the segment the key names.
	other := bytes.Clone(seg)
	other[150000] ^= 1
	otherChunk := f.storeChunk(name, other, 100000, 200000)
	if err := f.store.Delete(t.Context(), chunks[1]); err != nil {
		t.Fatal(err)
	}
	refused("chunks of other bytes")

	// A chunk missing from the listing: the seal says which it needs.
	if err := f.store.Delete(t.Context(), otherChunk); err != nil {
		t.Fatal(err)
	}
	refused("seal not json, a chunk missing")
	s, err := catalog.UnmarshalSeal(sealKey, good)
	if err != nil {
		t.Fatal(err)
	}
	s.SHA256 = sha(other)
	put(sealKey, catalog.MarshalSeal(s))
	refused("seal naming another sha256")
	put(sealKey, good)
	refused("missing chunk")
	f.storeChunk(name, seg, 100000, 200000)
	tamper(t, f.store, chunks[2], func(b []byte) { b[len(b)-20] ^= 1 })
	refused("tampered chunk")
}

// TestPushAfterSeal: wal-push of a segment wal-receive sealed stores
// nothing and succeeds for the same content (from the seal's key, without
// a download), and refuses different content.
func TestPushAfterSeal(t *testing.T) {
	f := newFixture(t, nil)
	name := "000000010000000000000007"
	seg := make([]byte, testSegSize)
	rand.Read(seg[:200000])
	f.storeSealed(name, seg, 65536)
	p := f.write(name, seg)
	gets := &getLog{Storage: f.store}
	opts := f.pushOpts(1)
	opts.Store = gets
	res, err := Push(t.Context(), p, opts)
	if err != nil || !res.Existed {
		t.Fatalf("push after seal: %+v %v, want Existed", res, err)
	}
	for _, k := range gets.keys {
		if strings.HasPrefix(k, "wal/") {
			t.Fatalf("push after seal downloaded %s", k)
		}
	}
	objs, _ := wal.ListWAL(t.Context(), f.store, name)
	if len(objs) != 1 || !objs[0].Seal {
		t.Fatalf("after push: %+v, want the seal alone", objs)
	}
	seg[100] ^= 1
	f.write(name, seg)
	if _, err := Push(t.Context(), p, f.pushOpts(1)); !errors.Is(err, wal.ErrConflict) {
		t.Fatalf("different content after seal: %v, want ErrConflict", err)
	}
}

// TestIndexSealed: a sealed segment is whole to the index (chains, Keys
// lists the seal and its chunks); a whole copy next to it wins, and a
// different SHA-256 is a conflict.
func TestIndexSealed(t *testing.T) {
	f := newFixture(t, nil)
	seg := make([]byte, testSegSize)
	rand.Read(seg)
	first, second := "000000010000000000000001", "000000010000000000000002"
	sealKey, chunks := f.storeSealed(first, seg, 400000)
	f.segment(second)
	f.push(second)
	ix, err := wal.LoadIndex(t.Context(), f.store)
	if err != nil {
		t.Fatal(err)
	}
	c := ix.Chain(first, testSegSize)
	if c.Last != second || c.LastPartial || !c.CoversWhole(first, testSegSize) {
		t.Fatalf("chain %+v", c)
	}
	keys := map[string]bool{}
	for _, k := range ix.Keys() {
		keys[k.Key] = true
	}
	if !keys[sealKey] || !keys[chunks[0]] || len(keys) != 1+len(chunks)+1 {
		t.Fatalf("Keys %v", keys)
	}
	if len(ix.Conflicts()) != 0 {
		t.Fatalf("conflicts %v", ix.Conflicts())
	}
	other := bytes.Clone(seg)
	other[0] ^= 1
	f.write(first, other)
	if err := f.store.Delete(t.Context(), sealKey); err != nil {
		t.Fatal(err)
	}
	f.push(first) // the seal was gone: stored whole
	f.storeSealed(first, seg, 400000)
	if ix, _ = wal.LoadIndex(t.Context(), f.store); len(ix.Conflicts()) != 1 {
		t.Fatalf("a seal and a whole copy with different content: conflicts %v", ix.Conflicts())
	}
}

// getLog records the keys Get was asked for.
type getLog struct {
	storage.Storage
	keys []string
}

func (g *getLog) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	g.keys = append(g.keys, key)
	return g.Storage.Get(ctx, key)
}
