package files

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestPackGCWhileSnapshot(t *testing.T) {
	testPackGCWhileSnapshot(t, storagetest.NewMemory())
}

// testPackGCWhileSnapshot: the first snapshot's packs are condemned once
// retention drops it; a second snapshot of the same directory (stat cache
// and all) runs while pack GC runs again and again, each run past the
// previous one's grace; then the second snapshot restores byte-identical,
// and the first one's packs are gone.
func testPackGCWhileSnapshot(t *testing.T, st storage.Storage) {
	ctx := t.Context()
	r := repo.New(st, encryptingCodec(t))
	src, cache := t.TempDir(), t.TempDir()
	mustWrite(t, filepath.Join(src, "a.bin"), randomBytes(1, 3<<20), 0o644)
	mustWrite(t, filepath.Join(src, "b.bin"), randomBytes(2, 3<<19), 0o644)
	mustWrite(t, filepath.Join(src, "dir/c.txt"), []byte("small file\n"), 0o600)
	o := opts(r, "media", src)
	o.CacheDir, o.trustRecent = cache, true
	s0, err := Backup(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	first := packsOf(t, st)

	// Retention drops s0; GC condemns its packs (now: past their grace).
	const grace = 30 * time.Minute
	clock := time.Now().Add(time.Hour)
	var runs []repo.PackGCSummary
	gc := func() {
		t.Helper()
		// Retention drops s0 only: s1, complete or not when retention
		// would have listed the snapshots, keeps its chunks.
		g, err := r.PlanPackGC(ctx, []*catalog.Snapshot{s0}, clock, grace)
		if err == nil {
			err = g.Apply(ctx)
		}
		if err != nil {
			t.Errorf("pack gc: %v", err)
			return
		}
		runs = append(runs, g.Summary())
		clock = clock.Add(time.Hour)
	}
	gc()
	if runs[0].CondemnPacks != int64(len(first)) {
		t.Fatalf("first run %+v: want the %d packs of the dropped snapshot condemned", runs[0], len(first))
	}

	// The second snapshot adds a file; GC runs all along. Its first read
	// waits until two GC runs saw it in progress.
	mustWrite(t, filepath.Join(src, "d.bin"), randomBytes(4, 1<<20), 0o644)
	seen, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	o.AfterRead = func(string, int) {
		once.Do(func() { close(seen); <-release })
	}
	var s1 *catalog.Snapshot
	var berr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		s1, berr = Backup(ctx, o)
	}()
	select {
	case <-seen:
	case <-done:
		t.Fatalf("snapshot ended before reading a file: %v", berr)
	}
	gc()
	gc()
	close(release)
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			gc()
		}
	}
	if berr != nil {
		t.Fatal(berr)
	}
	if t.Failed() {
		t.FailNow()
	}
	var held int64
	for _, s := range runs[1:] {
		held += s.HeldPacks
	}
	if held == 0 {
		t.Errorf("runs %+v: no deletion held back by the snapshot in progress", runs)
	}
	// The chunks of a.bin and b.bin were in condemned packs: stored
	// again, not taken from the stat cache.
	if s1.NewBytes < 3<<20+3<<19+1<<20 {
		t.Errorf("second snapshot stored %d new bytes; want every file stored afresh", s1.NewBytes)
	}
	gc() // nothing in progress: the first snapshot's packs go
	gc()
	for sum := range first {
		if packsOf(t, st)[sum] {
			t.Errorf("pack %.16s of the dropped snapshot is still there (last runs %+v)", sum, runs[len(runs)-2:])
		}
	}

	target := t.TempDir()
	if _, err := Restore(ctx, r, RestoreOptions{Snapshot: s1, Target: target}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.bin", "b.bin", "dir/c.txt", "d.bin"} {
		want, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(target, src, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s restored differs (%d bytes, want %d): %v", name, len(got), len(want), err)
		}
	}
}

func packsOf(t *testing.T, st storage.Storage) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := st.List(t.Context(), catalog.PacksPrefix, func(oi storage.ObjectInfo) error {
		if sum, ok := catalog.ParsePackKey(oi.Key); ok {
			out[sum] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
