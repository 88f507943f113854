package repo

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// gcRepo is an encrypted repository in memory whose objects are stored
// at *clock.
func gcRepo(t *testing.T) (*Repo, *storagetest.Memory, *time.Time) {
	t.Helper()
	mem := storagetest.NewMemory()
	clock := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	mem.Now = func() time.Time { return clock }
	return sealingRepo(t, mem), mem, &clock
}

// storeGCPack stores cs as one pack, as a snapshot does, and returns its
// SHA-256.
func storeGCPack(t *testing.T, r *Repo, cs []testChunk) string {
	t.Helper()
	ix := NewChunkIndex()
	w := r.NewPackWriter(t.Context(), ix, "")
	for _, c := range cs {
		if _, err := w.Add(c.id, c.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ref, ok := ix.Lookup(cs[0].id)
	if !ok {
		t.Fatal("pack not indexed")
	}
	return ref.Pack
}

// gcSnapshot stores a complete snapshot of one file made of cs.
func gcSnapshot(t *testing.T, r *Repo, set string, start time.Time, cs []testChunk) *catalog.Snapshot {
	t.Helper()
	e := catalog.ManifestEntry{Path: "/srv/f", Type: catalog.TypeFile, Mode: 0o644}
	for _, c := range cs {
		e.Chunks = append(e.Chunks, catalog.ChunkRef{ID: c.id, SHA256: c.id, Size: int64(len(c.data))})
		e.Size += int64(len(c.data))
	}
	b, _ := json.Marshal(e)
	return storeSnapshot(t, r, set, catalog.BackupID(start), start, []string{string(b)})
}

func packExists(t *testing.T, st storage.Storage, sum string) bool {
	t.Helper()
	key, _ := catalog.PackKey(sum)
	_, err := st.Stat(t.Context(), key)
	return err == nil
}

func planGC(t *testing.T, r *Repo, remaining []*catalog.Snapshot, now time.Time) *PackGC {
	t.Helper()
	g, err := r.PlanPackGC(t.Context(), remaining, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func applyGC(t *testing.T, r *Repo, remaining []*catalog.Snapshot, now time.Time) PackGCSummary {
	t.Helper()
	g := planGC(t, r, remaining, now)
	if err := g.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	return g.Summary()
}

// An unreferenced pack is condemned, waits out the grace, then goes
// (index object and pack); a referenced one stays; the record goes once
// its packs are handled.
func TestPackGCCondemnThenDelete(t *testing.T) {
	r, mem, clock := gcRepo(t)
	t0 := *clock
	a, b := chunks(1, 2, 4096), chunks(2, 2, 4096)
	packA, packB := storeGCPack(t, r, a), storeGCPack(t, r, b)
	s1 := gcSnapshot(t, r, "media", t0, a)
	gcSnapshot(t, r, "media", t0.Add(time.Minute), b) // retention deletes it

	plan := planGC(t, r, []*catalog.Snapshot{s1}, t0.Add(2*time.Hour))
	if s := plan.Summary(); s.CondemnPacks != 1 || s.DeletePacks != 0 || s.Packs != 2 || s.Chunks != 2 {
		t.Fatalf("plan %+v: want pack B condemned", s)
	}
	if countKeys(t, mem, catalog.CondemnedPrefix) != 0 {
		t.Fatal("planning wrote a record")
	}
	if err := plan.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	if countKeys(t, mem, catalog.CondemnedPrefix) != 1 || !packExists(t, mem, packB) {
		t.Fatal("want one record and pack B still there")
	}
	ix, err := r.LoadChunkIndex(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.LookupLive(b[0].id); ok {
		t.Error("a chunk of a condemned pack is offered for dedup")
	}
	if _, ok := ix.Lookup(b[0].id); !ok {
		t.Error("a chunk of a condemned pack cannot be read before it is deleted")
	}
	if _, ok := ix.LookupLive(a[0].id); !ok {
		t.Error("a chunk of a kept pack is not offered for dedup")
	}

	// Within the grace: it waits, and the record stays as it is.
	if s := applyGC(t, r, []*catalog.Snapshot{s1}, t0.Add(2*time.Hour+30*time.Minute)); s.WaitingPacks != 1 || s.DeletePacks != 0 {
		t.Fatalf("within grace %+v", s)
	}
	if !packExists(t, mem, packB) || countKeys(t, mem, catalog.CondemnedPrefix) != 1 {
		t.Fatal("pack B or its record went within the grace")
	}
	s := applyGC(t, r, []*catalog.Snapshot{s1}, t0.Add(3*time.Hour+time.Minute))
	if s.DeletePacks != 1 {
		t.Fatalf("after grace %+v: want pack B deleted", s)
	}
	if packExists(t, mem, packB) || !packExists(t, mem, packA) {
		t.Fatal("want pack B gone, pack A kept")
	}
	if n := countKeys(t, mem, catalog.IndexPrefix); n != 1 {
		t.Fatalf("%d index objects, want pack A's", n)
	}
	if n := countKeys(t, mem, catalog.CondemnedPrefix); n != 0 {
		t.Fatalf("%d records left, want none", n)
	}
}
