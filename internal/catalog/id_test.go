package catalog

import (
	"slices"
	"testing"
	"time"
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
