package repo

import (
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestIncompleteAndClean(t *testing.T) {
	ctx := t.Context()
	m := storagetest.NewMemory()
	now := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	m.Now = func() time.Time { return now }
	put := func(key, body string) {
		t.Helper()
		if err := m.Put(ctx, key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	// A complete backup, an old interrupted one and a recent one still running.
	done := &catalog.Backup{ID: "20261122T010000Z", Format: catalog.FormatVersion, StartWAL: "000000010000000000000002",
		EndWAL: "000000010000000000000002", WALSegmentSize: 16 << 20, Encrypted: true}
	key, _ := catalog.BackupPartKey(done.ID, "base.tar", true)
	done.Parts = []catalog.Part{{Name: "base.tar", Key: key, SHA256: strings.Repeat("0", 64)}}
	put(key, "x")
	put(catalog.BackupEntryKey(done.ID), string(catalog.MarshalBackup(done)))
	old, _ := catalog.BackupPartKey("20261122T020000Z", "16384.tar", true)
	put(old, "x")
	now = now.Add(2 * time.Hour)
	running, _ := catalog.BackupPartKey("20261122T065900Z", "16384.tar", true)
	put(running, "x")

	inc, err := New(m, nil).IncompleteBackups(ctx)
	if err != nil || len(inc) != 2 {
		t.Fatalf("Incomplete = %v, %v; want 2", inc, err)
	}
	n, err := New(m, nil).CleanIncompleteBackups(ctx, now.Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("CleanIncomplete removed %d, %v; want 1", n, err)
	}
	if _, err := m.Stat(ctx, old); err == nil {
		t.Fatal("old leftovers kept")
	}
	if _, err := m.Stat(ctx, running); err != nil {
		t.Fatal("a running backup's part was removed")
	}
	l, err := New(m, nil).ListBackups(ctx)
	if err != nil || len(l.Backups) != 1 || l.Backups[0].ID != done.ID {
		t.Fatalf("ListBackups = %v, %v", l, err)
	}
	if _, err := New(m, nil).Backup(ctx, "20261122T020000Z"); err == nil {
		t.Fatal("Get of an incomplete backup succeeded")
	}
}

func TestWindows(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 11, 22, h, 0, 0, 0, time.UTC) }
	b := func(end int) *catalog.Backup { return &catalog.Backup{EndTime: at(end)} }
	us := []Usability{
		{Backup: b(1), Usable: true},
		{Backup: b(3), Usable: false},
		{Backup: b(5), Usable: true},
	}
	us[0].Chain.LastStored = at(4)
	us[2].Chain.LastStored = at(8)
	got := Describe(Windows(us))
	want := "restorable to any moment from 2026-11-22T01:00:00Z to 2026-11-22T04:00:00Z and from 2026-11-22T05:00:00Z to 2026-11-22T08:00:00Z"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	us[0].Chain.LastStored = at(6)
	if got := Describe(Windows(us)); got != "restorable to any moment from 2026-11-22T01:00:00Z to 2026-11-22T08:00:00Z" {
		t.Fatalf("overlapping windows not merged: %s", got)
	}
}
