package restore

import (
	"archive/tar"
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// meter records what a job reports.
type meter struct {
	mu           sync.Mutex
	total, added int64
}

func (m *meter) SetTotal(n int64) { m.mu.Lock(); m.total = n; m.mu.Unlock() }
func (m *meter) Add(n int64)      { m.mu.Lock(); m.added += n; m.mu.Unlock() }
func (m *meter) Done()            {}

// TestRunProgress: Run sets the backup's size as the total and reports
// every byte of its parts as they are unpacked.
func TestRunProgress(t *testing.T) {
	m := storagetest.NewMemory()
	r := repo.New(m, &envelope.Codec{Level: 1})
	for i := 1; i <= 3; i++ {
		key, _ := catalog.WALKey(wal.SegmentFileName(1, uint64(i), seg), strings.Repeat("ab", 32), false)
		mustPut(t, m, key, "x")
	}
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for name, size := range map[string]int{"PG_VERSION": 3, "base/1/1259": 300 << 10, "global/pg_control": 8192} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(bytes.Repeat([]byte("1"), size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := bk("20261122T010000Z", 1, 2, at(2, 0))
	b.Format = catalog.FormatVersion
	for name, body := range map[string][]byte{"base.tar": archive.Bytes(), "backup_manifest": []byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`)} {
		key, _ := catalog.BackupPartKey(b.ID, name, false)
		w, err := r.PutSealed(t.Context(), key, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b.Parts = append(b.Parts, catalog.Part{Name: name, Key: key, SHA256: w.SHA256, Bytes: w.Bytes, Stored: w.Stored})
		b.Bytes += w.Bytes
	}
	mustPut(t, m, catalog.BackupEntryKey(b.ID), string(catalog.MarshalBackup(b)))

	var p meter
	res, err := Run(t.Context(), Options{Repo: r, Target: Target{Kind: Latest}, DataDir: filepath.Join(t.TempDir(), "data"),
		RestoreCommand: "true", Progress: &p})
	if err != nil {
		t.Fatal(err)
	}
	if p.total != b.Bytes || p.added != b.Bytes {
		t.Errorf("meter total %d, added %d; want the backup's %d bytes (restored %d)", p.total, p.added, b.Bytes, res.Bytes)
	}
}
