package storagetest_test

import (
	"errors"
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

func TestMemoryLock(t *testing.T) {
	ctx := t.Context()
	m := storagetest.NewMemory()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m.Now = func() time.Time { return now }
	m.LockFor = time.Hour
	if err := m.Put(ctx, "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	if until, err := m.LockedUntil(ctx, "k"); err != nil || !until.Equal(now.Add(time.Hour)) {
		t.Fatalf("LockedUntil = %v, %v", until, err)
	}
	if err := m.ExtendLock(ctx, "k", now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := m.ExtendLock(ctx, "k", now.Add(time.Minute)); err != nil { // never shortens
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if err := m.Delete(ctx, "k"); !errors.Is(err, storage.ErrLocked) || !errors.Is(err, storage.ErrPermanent) {
		t.Fatalf("Delete of locked = %v, want ErrLocked", err)
	}
	now = now.Add(2 * time.Hour)
	if err := m.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete after the lock ended: %v", err)
	}
	if _, err := m.LockedUntil(ctx, "k"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("LockedUntil(deleted) = %v, want ErrNotExist", err)
	}
}
