package check

import (
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/status"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// healthy is a repository with a backup 7h old, WAL 12s old, a drill
// and a verify 20h old, both passed.
func healthy(name string) *status.Status {
	walAt := now.Add(-12 * time.Second)
	return &status.Status{
		Name: name, Repo: "s3://b/" + name, Checked: now,
		Backups: []status.Backup{{ID: "20261122T050000Z", EndTime: now.Add(-7 * time.Hour), Usable: true, Status: "ok"}},
		WAL:     status.WAL{Newest: "000000010000000000000009", NewestTime: &walAt, AgeSeconds: 12},
		Verify:  &status.Report{OK: true, AgeSeconds: (20 * time.Hour).Seconds()},
		Drill:   &status.Report{OK: true, AgeSeconds: (20 * time.Hour).Seconds(), RTOSeconds: 41.26},
	}
}

func TestEvaluate(t *testing.T) {
	th := Defaults()
	tests := []struct {
		name   string
		edit   func(s *status.Status, tg *Target)
		th     func(th *Thresholds)
		state  State
		line   string   // the status line (the first line), exactly
		more   []string // further lines, exactly
		absent string   // must not be in the output
	}{
		{name: "ok", state: OK,
			line: "PITR OK - last backup 7h ago, WAL 12s behind, last verified 20h ago, last drill passed 20h ago | backup_age=25200s;93600;172800 wal_age=12s;300;900 wal_gaps=0 verify_age=72000s;691200;1296000 drill_age=72000s;691200;1296000 drill_rto=41.3s"},
		{name: "no backup", state: Critical,
			edit: func(s *status.Status, _ *Target) { s.Backups = nil },
			line: "PITR CRITICAL - no backup | wal_age=12s;300;900 wal_gaps=0 verify_age=72000s;691200;1296000 drill_age=72000s;691200;1296000 drill_rto=41.3s",
			more: []string{"CRITICAL: no backup"}},
		{name: "backup past warn", state: Warning,
			edit: func(s *status.Status, _ *Target) { s.Backups[0].EndTime = now.Add(-27 * time.Hour) },
			more: []string{"WARNING: last backup 27h ago (more than 26h)"}},
		{name: "backup past max", state: Critical,
			edit: func(s *status.Status, _ *Target) { s.Backups[0].EndTime = now.Add(-50 * time.Hour) },
			more: []string{"CRITICAL: last backup 2d ago (more than 48h)"}},
		{name: "backup thresholds from flags", state: Warning,
			th:   func(th *Thresholds) { th.BackupAge = Pair{Warn: time.Second, Crit: 0} },
			more: []string{"WARNING: last backup 7h ago (more than 1s)"}},
		{name: "newest backup not usable", state: Warning,
			edit: func(s *status.Status, _ *Target) {
				s.Backups = append(s.Backups, status.Backup{ID: "20261122T110000Z", Status: "part missing: base.tar"})
			},
			more: []string{"WARNING: newest backup 20261122T110000Z is not restorable: part missing: base.tar"}},
		{name: "no usable backup", state: Critical,
			edit: func(s *status.Status, _ *Target) { s.Backups[0].Usable, s.Backups[0].Status = false, "WAL missing: X" },
			line: "PITR CRITICAL - no usable backup (newest 20261122T050000Z: WAL missing: X) | wal_age=12s;300;900 wal_gaps=0 verify_age=72000s;691200;1296000 drill_age=72000s;691200;1296000 drill_rto=41.3s"},
		{name: "wal stale", state: Critical,
			edit: func(s *status.Status, _ *Target) { s.WAL.AgeSeconds = 1000 },
			more: []string{"CRITICAL: newest WAL stored 16m ago (more than 15m)"}},
		{name: "no wal", state: Critical,
			edit: func(s *status.Status, _ *Target) { s.WAL = status.WAL{AgeSeconds: -1} },
			more: []string{"CRITICAL: no WAL archived"}},
		{name: "wal gap", state: Critical,
			edit: func(s *status.Status, _ *Target) { s.WAL.Gaps = []string{"000000010000000000000005"} },
			line: "PITR CRITICAL - WAL gap: 000000010000000000000005 is missing, recovery cannot pass it | backup_age=25200s;93600;172800 wal_age=12s;300;900 wal_gaps=1 verify_age=72000s;691200;1296000 drill_age=72000s;691200;1296000 drill_rto=41.3s"},
		{name: "damaged entry", state: Warning,
			edit: func(s *status.Status, _ *Target) { s.Damaged = []repo.Damaged{{ID: "X", Reason: "not valid JSON"}} },
			more: []string{"WARNING: damaged backup entry X: not valid JSON"}},
		{name: "dumps per database", state: Critical,
			edit: func(s *status.Status, tg *Target) {
				s.Dumps = []status.Newest{{Name: "app", Count: 3, ID: "20261122T110000Z", EndTime: now.Add(-time.Hour)}, {Name: "old db", Count: 1, ID: "20261121T060000Z", EndTime: now.Add(-30 * time.Hour)}}
				tg.Databases = []string{"app", "billing"}
			},
			more: []string{"CRITICAL: no dump of database billing", "WARNING: last dump of old db 30h ago (more than 26h)"}},
		{name: "dump perfdata label quoted", state: Critical,
			edit: func(s *status.Status, tg *Target) {
				s.Dumps = []status.Newest{{Name: "old db", Count: 1, ID: "20261121T060000Z", EndTime: now.Add(-50 * time.Hour)}}
			},
			line: "PITR CRITICAL - last dump of old db 2d ago (more than 48h) | backup_age=25200s;93600;172800 wal_age=12s;300;900 wal_gaps=0 'dump_age.old db'=180000s;93600;172800 verify_age=72000s;691200;1296000 drill_age=72000s;691200;1296000 drill_rto=41.3s"},
		{name: "dump entries all damaged", state: Critical,
			edit: func(s *status.Status, _ *Target) { s.Dumps = []status.Newest{{Name: "app", Count: 2, Damaged: 2}} },
			more: []string{"CRITICAL: no readable dump of database app (2 damaged)"}},
		{name: "newest dump damaged", state: Warning,
			edit: func(s *status.Status, _ *Target) {
				s.Dumps = []status.Newest{{Name: "app", Count: 2, ID: "20261122T110000Z", EndTime: now.Add(-time.Hour), Damaged: 1}}
			},
			more: []string{"WARNING: 1 damaged dump entries of database app, newer than the newest readable one"}},
		{name: "file set missing", state: Critical,
			edit: func(_ *status.Status, tg *Target) { tg.FileSets = []string{"uploads"} },
			more: []string{"CRITICAL: no snapshot of file set uploads"}},
		{name: "drill failed", state: Critical,
			edit: func(s *status.Status, _ *Target) {
				s.Drill = &status.Report{OK: false, AgeSeconds: 3600, Summary: "SQL check returned 0 rows"}
			},
			more:   []string{"CRITICAL: last drill failed 60m ago: SQL check returned 0 rows"},
			absent: "drill_rto"},
		{name: "never verified", state: Warning,
			edit: func(s *status.Status, _ *Target) { s.Verify = nil },
			more: []string{"WARNING: never verified (pitr verify)"}},
		{name: "verify and drill not checked", state: OK,
			edit: func(s *status.Status, _ *Target) { s.Verify, s.Drill = nil, nil },
			th:   func(th *Thresholds) { th.VerifyAge, th.DrillAge = Pair{}, Pair{} },
			line: "PITR OK - last backup 7h ago, WAL 12s behind | backup_age=25200s;93600;172800 wal_age=12s;300;900 wal_gaps=0"},
		{name: "verify stale", state: Critical,
			edit: func(s *status.Status, _ *Target) { s.Verify.AgeSeconds = (16 * 24 * time.Hour).Seconds() },
			more: []string{"CRITICAL: last verify 16d ago (more than 360h)"}},
		{name: "offsite lag", state: Warning,
			edit: func(s *status.Status, _ *Target) { s.Offsite = &status.Offsite{Repo: "s3://off/x", LagSeconds: 7200} },
			more: []string{"WARNING: off-site copy 2h behind (more than 1h)"}},
		{name: "offsite up to date", state: OK,
			edit: func(s *status.Status, _ *Target) { s.Offsite = &status.Offsite{Repo: "s3://off/x"} },
			line: "PITR OK - last backup 7h ago, WAL 12s behind, last verified 20h ago, last drill passed 20h ago, off-site up to date | backup_age=25200s;93600;172800 wal_age=12s;300;900 wal_gaps=0 verify_age=72000s;691200;1296000 drill_age=72000s;691200;1296000 drill_rto=41.3s copy_lag=0s;3600;21600"},
		{name: "offsite unreadable", state: Critical,
			edit: func(s *status.Status, _ *Target) {
				s.Offsite = &status.Offsite{Repo: "s3://off/x", Error: "no repository"}
			},
			more: []string{"CRITICAL: off-site repository s3://off/x unreadable: no repository"}},
		{name: "repository unreadable", state: Unknown,
			edit: func(s *status.Status, _ *Target) {
				*s = status.Status{Name: "x", Repo: "s3://b/x", Error: "connection refused"}
			},
			line: "PITR UNKNOWN - repository s3://b/x unreadable: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := healthy("db1")
			tg := Target{Status: s}
			if tt.edit != nil {
				tt.edit(s, &tg)
			}
			th := th
			if tt.th != nil {
				tt.th(&th)
			}
			res := Evaluate([]Target{tg}, th)
			out := res.String()
			if res.State != tt.state {
				t.Errorf("state %s, want %s:\n%s", res.State, tt.state, out)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if tt.line != "" && lines[0] != tt.line {
				t.Errorf("status line\n got %s\nwant %s", lines[0], tt.line)
			}
			for _, want := range tt.more {
				found := false
				for _, l := range lines[1:] {
					found = found || l == want
				}
				if !found {
					t.Errorf("no line %q in:\n%s", want, out)
				}
			}
			if tt.absent != "" && strings.Contains(out, tt.absent) {
				t.Errorf("%q in:\n%s", tt.absent, out)
			}
		})
	}
}

func TestEvaluateSeveralClusters(t *testing.T) {
	a, b, c := healthy("db1"), healthy("db2"), healthy("db3")
	b.WAL.Gaps = []string{"000000010000000000000005"}
	c.Backups[0].EndTime = now.Add(-30 * time.Hour)
	res := Evaluate([]Target{{Status: a}, {Status: b}, {Status: c}}, Defaults())
	out := res.String()
	if res.State != Critical {
		t.Fatalf("state %s, want the worst (CRITICAL):\n%s", res.State, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "PITR CRITICAL - 3 clusters: 1 ok, 1 warning, 1 critical, 0 unknown; db2: WAL gap: 000000010000000000000005 is missing, recovery cannot pass it | db1.backup_age=25200s;93600;172800 ") {
		t.Errorf("status line %s", lines[0])
	}
	for _, label := range []string{" db2.wal_gaps=1 ", " db3.backup_age=108000s;93600;172800 "} {
		if !strings.Contains(lines[0], label) {
			t.Errorf("no %q in %s", label, lines[0])
		}
	}
	want := []string{"CRITICAL db2: WAL gap: 000000010000000000000005 is missing, recovery cannot pass it", "WARNING db3: last backup 30h ago (more than 26h)"}
	if strings.Join(lines[1:], "\n") != strings.Join(want, "\n") {
		t.Errorf("problem lines:\n%s\nwant:\n%s", strings.Join(lines[1:], "\n"), strings.Join(want, "\n"))
	}
}

func TestWorstUnknown(t *testing.T) {
	for _, tt := range []struct{ a, b, want State }{
		{OK, Warning, Warning}, {Warning, Unknown, Unknown}, {Unknown, Critical, Critical}, {Critical, Unknown, Critical}, {OK, OK, OK},
	} {
		if got := Worst(tt.a, tt.b); got != tt.want {
			t.Errorf("Worst(%s, %s) = %s, want %s", tt.a, tt.b, got, tt.want)
		}
	}
	if res := Evaluate(nil, Defaults()); res.State != Unknown {
		t.Errorf("no targets: %s", res.State)
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		12 * time.Second: "12s", 90 * time.Second: "90s", 45 * time.Minute: "45m", 100 * time.Minute: "100m",
		7 * time.Hour: "7h", 36 * time.Hour: "36h", 50 * time.Hour: "2d", -time.Second: "0s",
	} {
		if got := Human(d); got != want {
			t.Errorf("Human(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestLimit(t *testing.T) {
	for d, want := range map[time.Duration]string{
		26 * time.Hour: "26h", 15 * time.Minute: "15m", time.Second: "1s", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s",
	} {
		if got := Limit(d); got != want {
			t.Errorf("Limit(%s) = %s, want %s", d, got, want)
		}
	}
}
