package storagetest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestMemory(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Storage { return storagetest.NewMemory() })
}

func TestMemoryClock(t *testing.T) {
	m := storagetest.NewMemory()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	m.Now = func() time.Time { return at }
	if err := m.Put(t.Context(), "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	oi, err := m.Stat(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if !oi.ModTime.Equal(at) || oi.ModTime.Location() != time.UTC {
		t.Errorf("ModTime = %v, want %v in UTC", oi.ModTime, at)
	}
}
