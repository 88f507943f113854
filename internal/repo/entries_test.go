package repo

import (
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// TestReserveIDSameSecond: jobs reserving ids in the same second, at once,
// all succeed with distinct ids that sort by time.
func TestReserveIDSameSecond(t *testing.T) {
	st := storagetest.NewMemory()
	r := New(st, nil)
	t0 := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			id, err := r.ReserveID(t.Context(), t0.Add(time.Duration(i)*100*time.Millisecond), catalog.BackupReservationKey)
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
	later, err := r.ReserveID(t.Context(), t0.Add(time.Second), catalog.BackupReservationKey)
	if err != nil || later != "20261201T103001Z" || later < ids[2] {
		t.Errorf("next second: %q, %v", later, err)
	}
	// A dump of one database does not take a backup's id, nor another database's.
	for _, db := range []string{"app", "other"} {
		id, err := r.ReserveID(t.Context(), t0, func(id string) (string, error) { return catalog.DumpReservationKey(db, id) })
		if err != nil || id != "20261201T103000Z" {
			t.Errorf("dump of %s: %q, %v", db, id, err)
		}
	}
	for range catalog.MaxIDSeq - 2 {
		if _, err := r.ReserveID(t.Context(), t0, catalog.BackupReservationKey); err != nil {
			t.Fatal(err)
		}
	}
	if id, err := r.ReserveID(t.Context(), t0, catalog.BackupReservationKey); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("eleventh id of a second: %q, %v; want an error", id, err)
	}
}

func TestSaveEntry(t *testing.T) {
	st := storagetest.NewMemory()
	r := New(st, nil)
	key := catalog.BackupEntryKey("20261201T103000Z")
	if err := r.SaveEntry(t.Context(), key, []byte("entry\n")); err != nil {
		t.Fatal(err)
	}
	if err := r.SaveEntry(t.Context(), key, []byte("entry\n")); err != nil {
		t.Errorf("same entry again (a retried write): %v", err)
	}
	if err := r.SaveEntry(t.Context(), key, []byte("other\n")); !errors.Is(err, storage.ErrExist) {
		t.Errorf("other entry = %v, want ErrExist", err)
	}
	rc, _ := st.Get(t.Context(), key)
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if string(b) != "entry\n" {
		t.Errorf("entry now %q", b)
	}
}
