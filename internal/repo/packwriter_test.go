package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func sealingRepo(t *testing.T, st storage.Storage) *Repo {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return New(st, &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}})
}

type testChunk struct {
	id   string
	data []byte
}

// chunks returns n incompressible chunks of size bytes; the id is the
// plaintext's SHA-256 (any 64 hex digits do here).
func chunks(seed byte, n, size int) []testChunk {
	rng := rand.NewChaCha8([32]byte{seed})
	out := make([]testChunk, n)
	for i := range out {
		b := make([]byte, size)
		_, _ = rng.Read(b)
		s := sha256.Sum256(b)
		out[i] = testChunk{hex.EncodeToString(s[:]), b}
	}
	return out
}

func countKeys(t *testing.T, st storage.Storage, prefix string) int {
	t.Helper()
	n := 0
	if err := st.List(t.Context(), prefix, func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPackWriterPacksChunks(t *testing.T) {
	mem := storagetest.NewMemory()
	r := sealingRepo(t, mem)
	cs := chunks(1, 40, 1<<20)
	ix := NewChunkIndex()
	w := r.NewPackWriter(t.Context(), ix, "")
	for i, c := range append(cs, cs[:5]...) { // the last five again: added once
		added, err := w.Add(c.id, c.data)
		if err != nil {
			t.Fatal(err)
		}
		if added != (i < len(cs)) {
			t.Errorf("chunk %d: added %v", i, added)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	packs, indexes := countKeys(t, mem, catalog.PacksPrefix), countKeys(t, mem, catalog.IndexPrefix)
	if st.Chunks != 40 || st.NewBytes != 40<<20 || packs != 3 || indexes != 3 || st.Packs != 3 || st.Puts != 6 {
		t.Errorf("stats %+v, %d packs and %d index objects stored; want 40 chunks in 3 packs", st, packs, indexes)
	}
	// Every chunk reads back from a fresh index, each pack about PackSize.
	loaded, err := r.LoadChunkIndex(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		ref, ok := loaded.Lookup(c.id)
		if !ok {
			t.Fatalf("chunk %.8s not indexed", c.id)
		}
		if ix2, _ := ix.Lookup(c.id); ix2 != ref {
			t.Errorf("writer's index and loaded index differ: %+v, %+v", ix2, ref)
		}
		got, err := r.ReadBlob(t.Context(), ref, true, c.id)
		if err != nil || string(got) != string(c.data) {
			t.Fatalf("chunk %.8s: %v", c.id, err)
		}
	}
	_ = mem.List(t.Context(), catalog.PacksPrefix, func(oi storage.ObjectInfo) error {
		if oi.Size > PackSize {
			t.Errorf("pack %s is %d bytes", oi.Key, oi.Size)
		}
		return nil
	})

	// A second writer on the loaded index stores nothing known.
	w2 := r.NewPackWriter(t.Context(), loaded, "")
	for _, c := range cs {
		if added, err := w2.Add(c.id, c.data); added || err != nil {
			t.Fatalf("known chunk added: %v %v", added, err)
		}
	}
	if err := w2.Close(); err != nil || w2.Stats() != (PackStats{}) {
		t.Errorf("second writer: %v, %+v", err, w2.Stats())
	}
}

func TestPackWriterUploadFails(t *testing.T) {
	mem := storagetest.NewMemory()
	f := storagetest.NewFaulty(mem)
	r := sealingRepo(t, f)
	f.Fail(storagetest.OpCreate, 1, errors.New("disk on fire"))
	w := r.NewPackWriter(t.Context(), NewChunkIndex(), "")
	var err error
	for _, c := range chunks(2, 40, 1<<20) {
		if _, err = w.Add(c.id, c.data); err != nil {
			break
		}
	}
	if cerr := w.Close(); cerr == nil || !strings.Contains(cerr.Error(), "disk on fire") || err != nil && !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("add %v, close %v; want the upload's error", err, cerr)
	}
	// No index object names a pack that is not stored.
	ix, lerr := r.LoadChunkIndex(t.Context(), nil)
	if lerr != nil {
		t.Fatal(lerr)
	}
	for sum := range ix.indexes {
		pi, _ := r.ReadIndexObject(t.Context(), sum)
		key, _ := catalog.PackKey(pi.Pack)
		if _, err := mem.Stat(t.Context(), key); err != nil {
			t.Errorf("index %s names a missing pack: %v", sum, err)
		}
	}
}

func TestLoadChunkIndexCached(t *testing.T) {
	mem := storagetest.NewMemory()
	f := storagetest.NewFaulty(mem)
	r := sealingRepo(t, f)
	cache := filepath.Join(t.TempDir(), "index")
	w := r.NewPackWriter(t.Context(), NewChunkIndex(), cache)
	cs := chunks(3, 20, 1<<20)
	for _, c := range cs {
		if _, err := w.Add(c.id, c.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cached, _ := filepath.Glob(filepath.Join(cache, "*.json"))
	if len(cached) != 2 {
		t.Fatalf("cache holds %v, want the 2 index objects written", cached)
	}
	// From the cache: the listing only, no index object fetched.
	gets := f.Calls(storagetest.OpGet)
	ix, err := r.LoadChunkIndexCached(t.Context(), nil, cache)
	if err != nil || ix.Len() != 20 || f.Calls(storagetest.OpGet) != gets {
		t.Fatalf("cached load: %v, %d chunks, %d gets", err, ix.Len(), f.Calls(storagetest.OpGet)-gets)
	}
	// A damaged cached object is fetched again and rewritten; a deleted
	// cache is rebuilt.
	if err := os.WriteFile(cached[0], []byte(`{"format":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if ix, err := r.LoadChunkIndexCached(t.Context(), nil, cache); err != nil || ix.Len() != 20 {
		t.Fatalf("damaged cache: %v, %d chunks", err, ix.Len())
	}
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	if ix, err := r.LoadChunkIndexCached(t.Context(), nil, cache); err != nil || ix.Len() != 20 {
		t.Fatalf("rebuilt cache: %v, %d chunks", err, ix.Len())
	}
	for _, p := range cached {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("cache not rebuilt: %v", err)
		}
	}
	// A cache entry whose name the repository does not list is unused.
	if ix, err := r.LoadChunkIndexCached(t.Context(), nil, t.TempDir()); err != nil || ix.Len() != 20 {
		t.Fatalf("empty cache: %v", err)
	}
}

func TestCheckDedupKeyID(t *testing.T) {
	r := New(storagetest.NewMemory(), nil)
	now := time.Now()
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for i, tc := range []struct {
		key  string
		fail bool
	}{{a, false}, {a, false}, {b, true}} {
		err := r.CheckDedupKeyID(t.Context(), tc.key, now)
		if (err != nil) != tc.fail || tc.fail && !errors.Is(err, ErrDedupKeyMismatch) {
			t.Errorf("step %d: %v", i, err)
		}
		if err != nil && !strings.Contains(err.Error(), "copy the dedup key") {
			t.Errorf("error %q does not say what to do", err)
		}
	}
	rc, err := r.Store().Get(t.Context(), catalog.DedupKeyIDKey)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
}
