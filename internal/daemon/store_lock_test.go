package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// TestStoreMonitorLocked: a Delete refused for an Object Lock is the
// store's answer, not an outage, and LockerOf sees through the monitor.
func TestStoreMonitorLocked(t *testing.T) {
	mem := storagetest.NewMemory()
	mem.LockFor = time.Hour
	mon := NewStoreMonitor(mem, nil)
	if err := mon.Put(t.Context(), "k", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := mon.Delete(t.Context(), "k"); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("Delete = %v, want ErrLocked", err)
	}
	if st := mon.Status(); !st.Up() {
		t.Errorf("status %+v after a refused Delete, want up", st)
	}
	if _, ok := storage.LockerOf(mon); !ok {
		t.Error("LockerOf does not see through the store monitor")
	}
}
