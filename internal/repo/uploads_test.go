package repo

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// memoryUploads is a memory store that also holds incomplete uploads, as
// an S3 bucket does after a killed Put.
type memoryUploads struct {
	*storagetest.Memory
	uploads []storage.Upload
}

func (m *memoryUploads) ListUploads(ctx context.Context, prefix string, fn func(storage.Upload) error) error {
	for _, u := range m.uploads {
		if strings.HasPrefix(u.Key, prefix) {
			if err := fn(u); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memoryUploads) AbortUpload(ctx context.Context, key, id string) error {
	m.uploads = slices.DeleteFunc(m.uploads, func(u storage.Upload) bool { return u.Key == key && u.ID == id })
	return nil
}

// TestCleanIncompleteAbortsUploads: the uploads of a backup killed mid-part
// are aborted once stale, even when the backup stored no object at all;
// those of a running backup, and others, stay.
func TestCleanIncompleteAbortsUploads(t *testing.T) {
	now := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	m := &memoryUploads{Memory: storagetest.NewMemory()}
	key := func(id, part string) string {
		k, err := catalog.BackupPartKey(id, part, true)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	m.uploads = []storage.Upload{
		{Key: key("20261122T020000Z", "base.tar"), ID: "killed", Initiated: now.Add(-3 * time.Hour)},
		{Key: key("20261122T045900Z", "base.tar"), ID: "running", Initiated: now.Add(-time.Minute)},
		{Key: "wal/0000000100000000/000000010000000000000001.x.zst.age", ID: "wal", Initiated: now.Add(-3 * time.Hour)},
	}
	n, err := New(m, nil).CleanIncompleteBackups(t.Context(), now.Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("CleanIncomplete = %d, %v; want 1 upload aborted", n, err)
	}
	var left []string
	for _, u := range m.uploads {
		left = append(left, u.ID)
	}
	if want := []string{"running", "wal"}; !slices.Equal(left, want) {
		t.Errorf("uploads left %q, want %q", left, want)
	}
}
