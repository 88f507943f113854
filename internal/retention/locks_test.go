package retention

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

const segSize = 16 << 20

var sha = strings.Repeat("ab", 32)

// lockRepo is a repository in a memory store whose uploads were locked for
// a day: backups b1 (start segment 2), b2 (5) and b3 (8) on timeline 1,
// timeline 2 forking at segment 9, a streamed partial segment at the end,
// and an abandoned timeline-3 segment before b2.
func lockRepo(t *testing.T, now time.Time) (*storagetest.Memory, []*catalog.Backup) {
	t.Helper()
	ctx := t.Context()
	m := storagetest.NewMemory()
	m.Now = func() time.Time { return now }
	m.LockFor = 24 * time.Hour
	put := func(key string) {
		t.Helper()
		if err := m.Put(ctx, key, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	put(catalog.MarkerKey)
	bk, err := catalog.BindingKey(1, "7301234567890123456")
	if err != nil {
		t.Fatal(err)
	}
	put(bk)
	var backups []*catalog.Backup
	for i, seg := range []uint64{2, 5, 8} {
		id := catalog.BackupID(now.Add(time.Duration(i) * time.Hour))
		b := &catalog.Backup{ID: id, Timeline: 1, StartWAL: wal.SegmentFileName(1, seg, segSize), WALSegmentSize: segSize}
		for _, k := range []string{mustKey(t)(catalog.BackupReservationKey(id)), mustKey(t)(catalog.BackupPartKey(id, "base.tar", true)), catalog.BackupEntryKey(id)} {
			put(k)
		}
		backups = append(backups, b)
	}
	for seg := uint64(1); seg <= 10; seg++ {
		put(mustKey(t)(catalog.WALKey(wal.SegmentFileName(1, seg, segSize), sha, true)))
	}
	put(mustKey(t)(catalog.WALKey(wal.SegmentFileName(1, 2, segSize)+".00000028.backup", sha, true)))
	put(mustKey(t)(catalog.WALKey(wal.SegmentFileName(1, 9, segSize)+".partial", sha, true)))
	put(mustKey(t)(catalog.WALKey("00000002.history", sha, true)))
	put(mustKey(t)(catalog.WALKey("00000003.history", sha, true)))
	put(mustKey(t)(catalog.WALKey(wal.SegmentFileName(3, 4, segSize), sha, true)))
	for seg := uint64(9); seg <= 11; seg++ {
		put(mustKey(t)(catalog.WALKey(wal.SegmentFileName(2, seg, segSize), sha, true)))
	}
	put(mustKey(t)(catalog.StreamChunkKey(wal.SegmentFileName(2, 12, segSize), 0, 4096, segSize, sha, true)))
	return m, backups
}

func mustKey(t *testing.T) func(string, error) string {
	return func(k string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
}

// TestExtendLocks keeps b2 and b3 (b1 goes): their objects, the WAL from
// b2's start on (every timeline), the histories, the marker and the
// binding get the new lock; b1 and the WAL before segment 5 keep the lock
// of their upload.
func TestExtendLocks(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m, backups := lockRepo(t, now)
	m.Now = func() time.Time { return now } // the clock this test moves
	ix, err := wal.LoadIndex(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	until := now.Add(40 * 24 * time.Hour)
	n, err := ExtendLocks(ctx, m, backups[1:], ix, until)
	if err != nil {
		t.Fatal(err)
	}
	var want, locked, unlocked []string
	err = m.List(ctx, "", func(oi storage.ObjectInfo) error {
		got, err := m.LockedUntil(ctx, oi.Key)
		if err != nil {
			return err
		}
		if got.Before(until) {
			unlocked = append(unlocked, oi.Key)
		} else {
			locked = append(locked, oi.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"backups/" + backups[0].ID + "/base.tar.zst.age",
		"backups/" + backups[0].ID + "/backup.json",
		"backups/" + backups[0].ID + "/reserved.json",
		"wal/0000000100000000/000000010000000000000001." + sha + ".zst.age",
		"wal/0000000100000000/000000010000000000000002." + sha + ".zst.age",
		"wal/0000000100000000/000000010000000000000002.00000028.backup." + sha + ".zst.age",
		"wal/0000000100000000/000000010000000000000003." + sha + ".zst.age",
		"wal/0000000100000000/000000010000000000000004." + sha + ".zst.age",
		"wal/0000000300000000/000000030000000000000004." + sha + ".zst.age",
	}
	slices.Sort(want)
	if strings.Join(unlocked, "\n") != strings.Join(want, "\n") {
		t.Errorf("not extended:\n%s\nwant\n%s", strings.Join(unlocked, "\n"), strings.Join(want, "\n"))
	}
	if n != len(locked) {
		t.Errorf("ExtendLocks = %d, want %d (the objects now locked until %s)", n, len(locked), until)
	}
	for _, k := range []string{catalog.MarkerKey, "wal/timelines/00000003.history." + sha + ".zst.age"} {
		if !slices.Contains(locked, k) {
			t.Errorf("%s not locked", k)
		}
	}
	if !strings.Contains(strings.Join(locked, "\n"), ".stream/") {
		t.Error("the streamed chunk is not locked")
	}

	// Again: nothing to extend; the locks hold against Delete.
	if n, err := ExtendLocks(ctx, m, backups[1:], ix, until.Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("second ExtendLocks = %d, %v; want 0", n, err)
	}
	now = now.Add(30 * 24 * time.Hour)
	if err := m.Delete(ctx, catalog.BackupEntryKey(backups[1].ID)); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("delete of a kept backup's entry after 30 days = %v, want ErrLocked", err)
	}
	if err := m.Delete(ctx, catalog.BackupEntryKey(backups[0].ID)); err != nil {
		t.Errorf("delete of a dropped backup's entry after 30 days: %v", err)
	}
}

func TestExtendLocksNoLocker(t *testing.T) {
	m := storagetest.NewFaulty(storagetest.NewMemory()) // hides the Locker
	ix, err := wal.LoadIndex(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ExtendLocks(t.Context(), m, nil, ix, time.Now()); err == nil || err.Error() != "extend locks: the store has no object lock" {
		t.Errorf("ExtendLocks without a Locker = %v", err)
	}
}
