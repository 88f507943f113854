package files

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// meter records what a job reports.
type meter struct {
	mu           sync.Mutex
	total, added int64
}

func (m *meter) SetTotal(n int64) { m.mu.Lock(); m.total = n; m.mu.Unlock() }
func (m *meter) Add(n int64)      { m.mu.Lock(); m.added += n; m.mu.Unlock() }
func (m *meter) Done()            {}

// TestProgress: a snapshot reports every byte it scans, read or known
// from the stat cache; a restore reports its total and every byte it
// writes.
func TestProgress(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "big.bin"), randomBytes(1, 5<<20), 0o644)
	for i := range 20 {
		mustWrite(t, filepath.Join(dir, "s", string(rune('a'+i))+".txt"), randomBytes(uint64(10+i), 3000), 0o644)
	}
	r := repo.New(storagetest.NewMemory(), encryptingCodec(t))
	o := opts(r, "media", dir)
	o.CacheDir, o.trustRecent = t.TempDir(), true
	var snap *catalog.Snapshot
	for _, run := range []string{"first, every file read", "second, every file from the stat cache"} {
		var m meter
		o.Progress = &m
		var err error
		snap, err = Backup(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		if m.added != snap.Bytes || m.total != 0 {
			t.Errorf("%s: meter added %d, total %d; want the snapshot's %d bytes, no total", run, m.added, m.total, snap.Bytes)
		}
	}
	var m meter
	st, err := Restore(t.Context(), r, RestoreOptions{Snapshot: snap, Target: t.TempDir(), Progress: &m})
	if err != nil {
		t.Fatal(err)
	}
	if m.total != st.Bytes || m.added != st.Bytes || st.Bytes != snap.Bytes {
		t.Errorf("restore: meter total %d, added %d; restored %d of the snapshot's %d bytes", m.total, m.added, st.Bytes, snap.Bytes)
	}
}
