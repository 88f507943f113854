package verify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pitr-dev/pitr/internal/catalog"
)

func TestDrillJudge(t *testing.T) {
	var num pgtype.Numeric
	if err := num.Scan("12.5"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		v    any
		min  int64
		want string
		ok   bool
	}{
		{int64(3), 1, "returned 3", true},
		{int64(0), 1, "returned 0, want at least 1", false},
		{int32(0), 0, "returned 0", true},
		{int16(-1), 0, "returned -1, want at least 0", false},
		{float64(0.5), 1, "returned 0.5, want at least 1", false},
		{num, 12, "returned 12.5", true},
		{"42", 50, "returned 42, want at least 50", false},
		{"alice", 1, `returned "alice"`, true},
		{time.Unix(0, 0), 1, "returned a time.Time", true},
		{true, 1, "returned a bool", true},
		{nil, 0, "returned NULL", false},
	} {
		got, ok := drillJudge(tc.v, tc.min)
		if got != tc.want || ok != tc.ok {
			t.Errorf("drillJudge(%#v, %d) = %q, %v; want %q, %v", tc.v, tc.min, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDrillSummaryAndReport(t *testing.T) {
	reached := time.Date(2026, 11, 22, 14, 1, 0, 0, time.UTC)
	r := &DrillResult{
		Started: reached.Add(time.Hour), Finished: reached.Add(time.Hour + time.Minute),
		Backup: "20261122T020000Z", Target: "latest", Reached: reached, RTO: 41234 * time.Millisecond,
		VerifyBackup: "ok", Databases: []string{"app", "postgres", "template1"}, AmcheckOK: true, Checks: 2, ChecksOK: 2,
	}
	want := "drill passed: backup 20261122T020000Z restored to 2026-11-22T14:01:00Z in 41.2 s (RTO); amcheck ok on 3 databases; 2 checks ok"
	if got := r.Summary(); got != want {
		t.Errorf("summary:\n%s\nwant\n%s", got, want)
	}
	rep := r.Report("pitr test")
	if rep.Kind != catalog.ReportDrill || !rep.OK || rep.Backup != r.Backup || rep.Target != "latest" || rep.Reached == nil || !rep.Reached.Equal(reached) ||
		rep.RTOSeconds != 41.234 || rep.Summary != want || rep.Tool != "pitr test" {
		t.Errorf("report %+v", rep)
	}

	r.Problems = []string{"check app: SELECT count(*) FROM notes WHERE false: returned 0, want at least 1"}
	if got := r.Summary(); got != "drill failed: 1 problem (backup 20261122T020000Z)" {
		t.Errorf("failed summary %q", got)
	}
	if rep := r.Report(""); rep.OK || len(rep.Problems) != 1 {
		t.Errorf("failed report %+v", rep)
	}
}

func TestDrillCountTree(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a", "one"), []byte("12345"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "a", "b", "two"), []byte("123"), 0o644))
	must(os.Link(filepath.Join(dir, "a", "one"), filepath.Join(dir, "a", "b", "one-again")))
	must(os.Symlink("one", filepath.Join(dir, "a", "link")))
	n, bytes, err := drillCountTree(dir)
	if err != nil || n != 2 || bytes != 8 {
		t.Fatalf("drillCountTree = %d files, %d bytes, %v; want 2, 8", n, bytes, err)
	}
}

func TestDrillOneLine(t *testing.T) {
	if got := drillOneLine("FATAL: x\n\tdetail\n\n"); got != "FATAL: x | detail" {
		t.Errorf("%q", got)
	}
	if got := drillLimitLines("a\nb\nc\n", 2); !strings.HasPrefix(got, "a | b | (1 more lines)") {
		t.Errorf("%q", got)
	}
}

// A drill that cannot restore (no backup; a file set without snapshots)
// fails with one line per problem, saves its report, and leaves nothing
// in its scratch area.
func TestDrillNothingToRestore(t *testing.T) {
	tr := newTestRepo(t)
	dir := t.TempDir()
	clock := t0
	res, err := Drill(t.Context(), DrillOptions{
		Repo: tr.r, RestoreCommand: "false", Dir: dir, FileSets: []string{"uploads"}, Tool: "pitr test",
		Now: func() time.Time { clock = clock.Add(time.Second); return clock },
	})
	if !errors.Is(err, ErrDrillFailed) || res == nil || len(res.Problems) != 2 ||
		!strings.HasPrefix(res.Problems[0], "restore: ") || !strings.HasPrefix(res.Problems[1], "files uploads: ") {
		t.Fatalf("Drill = %+v, %v; want two problems (restore, files)", res, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("scratch area holds %d entries after the drill", len(entries))
	}
	rep, err := tr.r.LatestReport(t.Context(), catalog.ReportDrill)
	if err != nil || rep == nil || rep.OK || len(rep.Problems) != 2 || rep.ID != res.ReportID || rep.Tool != "pitr test" {
		t.Fatalf("saved report %+v, %v", rep, err)
	}
}
