package catalog

import (
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestBackupIDs(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	ids := []string{BackupID(t0.Add(-time.Second))}
	for seq := range MaxIDSeq + 1 {
		ids = append(ids, BackupIDSeq(t0, seq))
	}
	ids = append(ids, BackupID(t0.Add(time.Second)), BackupID(t0.Add(time.Hour)))
	if ids[1] != "20261201T103000Z" || ids[2] != "20261201T103000Z-1" || ids[10] != "20261201T103000Z-9" {
		t.Errorf("ids %q", ids)
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids %q do not sort as their times", ids)
	}
	for _, id := range ids {
		if !ValidBackupID(id) {
			t.Errorf("ValidBackupID(%q) = false", id)
		}
		if got, ok := BackupIDTime(id); !ok || BackupID(got) != id[:16] {
			t.Errorf("BackupIDTime(%q) = %v, %v", id, got, ok)
		}
		for _, key := range []string{BackupEntryKey(id), BackupPrefix(id) + "base.tar.zst"} {
			if got, ok := BackupIDOfKey(key); !ok || got != id {
				t.Errorf("BackupIDOfKey(%q) = %q, %v", key, got, ok)
			}
		}
		if got, ok := ParseBackupEntryKey(BackupEntryKey(id)); !ok || got != id {
			t.Errorf("ParseBackupEntryKey(%q) = %q, %v", BackupEntryKey(id), got, ok)
		}
		entry, _ := DumpEntryKey("app", id)
		if _, got, ok := ParseDumpEntryKey(entry); !ok || got != id {
			t.Errorf("ParseDumpEntryKey(%q) = %q, %v", entry, got, ok)
		}
	}
	if got, _ := BackupIDTime("20261201T103000Z-3"); !got.Equal(t0) {
		t.Errorf("BackupIDTime of a -3 id = %v, want %v", got, t0)
	}
	for _, bad := range []string{"", "latest", "20261201T103000", "20261201T103000Z-", "20261201T103000Z-0", "20261201T103000Z-10",
		"20261201T103000Z-a", "20261201T103000Z--1", "20261201T103000Z-1-1", "2026-12-01T10:30:00Z", "20261301T103000Z"} {
		if ValidBackupID(bad) {
			t.Errorf("ValidBackupID(%q) = true", bad)
		}
		if _, ok := BackupIDOfKey("backups/" + bad + "/backup.json"); ok {
			t.Errorf("BackupIDOfKey accepted id %q", bad)
		}
	}
}

// TestReserveIDSameSecond: jobs reserving ids in the same second, at once,
// all succeed with distinct ids that sort by time.
func TestReserveIDSameSecond(t *testing.T) {
	st := storagetest.NewMemory()
	t0 := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			id, err := ReserveID(t.Context(), st, t0.Add(time.Duration(i)*100*time.Millisecond), BackupReservationKey)
			if err != nil {
				t.Errorf("ReserveID: %v", err)
				return
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(ids)
	if want := []string{"20261201T103000Z", "20261201T103000Z-1", "20261201T103000Z-2"}; !slices.Equal(ids, want) {
		t.Fatalf("ids %q, want %q", ids, want)
	}
	later, err := ReserveID(t.Context(), st, t0.Add(time.Second), BackupReservationKey)
	if err != nil || later != "20261201T103001Z" || later < ids[2] {
		t.Errorf("next second: %q, %v", later, err)
	}
	// A dump of one database does not take a backup's id, nor another database's.
	for _, db := range []string{"app", "other"} {
		id, err := ReserveID(t.Context(), st, t0, func(id string) (string, error) { return DumpReservationKey(db, id) })
		if err != nil || id != "20261201T103000Z" {
			t.Errorf("dump of %s: %q, %v", db, id, err)
		}
	}
	for range MaxIDSeq - 2 {
		if _, err := ReserveID(t.Context(), st, t0, BackupReservationKey); err != nil {
			t.Fatal(err)
		}
	}
	if id, err := ReserveID(t.Context(), st, t0, BackupReservationKey); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("eleventh id of a second: %q, %v; want an error", id, err)
	}
}

func TestCreateEntry(t *testing.T) {
	st := storagetest.NewMemory()
	key := BackupEntryKey("20261201T103000Z")
	if err := CreateEntry(t.Context(), st, key, []byte("entry\n")); err != nil {
		t.Fatal(err)
	}
	if err := CreateEntry(t.Context(), st, key, []byte("entry\n")); err != nil {
		t.Errorf("same entry again (a retried write): %v", err)
	}
	if err := CreateEntry(t.Context(), st, key, []byte("other\n")); !errors.Is(err, storage.ErrExist) {
		t.Errorf("other entry = %v, want ErrExist", err)
	}
	rc, _ := st.Get(t.Context(), key)
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if string(b) != "entry\n" {
		t.Errorf("entry now %q", b)
	}
}
