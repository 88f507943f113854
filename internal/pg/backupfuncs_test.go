package pg

import (
	"strings"
	"testing"
)

// TestBackupSQL: PostgreSQL 15 renamed the low-level backup functions and
// dropped exclusive mode; 13 and 14 need exclusive = false spelled out.
func TestBackupSQL(t *testing.T) {
	for _, tc := range []struct {
		major       int
		start, stop string
	}{
		{13, "pg_start_backup($1, $2, false)", "pg_stop_backup(false, false)"},
		{14, "pg_start_backup($1, $2, false)", "pg_stop_backup(false, false)"},
		{15, "pg_backup_start($1, $2)", "pg_backup_stop(false)"},
		{17, "pg_backup_start($1, $2)", "pg_backup_stop(false)"},
	} {
		start, stop := backupSQL(tc.major)
		if !strings.Contains(start, tc.start) || !strings.Contains(stop, tc.stop) {
			t.Errorf("PostgreSQL %d: %q, %q", tc.major, start, stop)
		}
	}
}

func TestLabelTimeline(t *testing.T) {
	label := "START WAL LOCATION: 0/2000028 (file 000000030000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-22 04:56:35 UTC\nLABEL: pitr x\nSTART TIMELINE: 3\n"
	if tli, err := LabelTimeline(label); err != nil || tli != 3 {
		t.Errorf("LabelTimeline = %d, %v", tli, err)
	}
	if _, err := LabelTimeline("LABEL: x\n"); err == nil {
		t.Error("a label without START TIMELINE was accepted")
	}
}
