package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/status"
)

// MonitorJob exports each repository's state labelled by cluster; one
// that cannot be read is down and exports no state.
func TestMonitorJob(t *testing.T) {
	now := t0
	walAt := t0.Add(-30 * time.Second)
	good := &status.Status{Name: "db1", Checked: t0,
		Backups: []status.Backup{{ID: "a", EndTime: t0.Add(-time.Hour), Usable: true}, {ID: "b", EndTime: t0, Usable: false}},
		WAL:     status.WAL{NewestTime: &walAt, Gaps: []string{"000000010000000000000005"}},
		Verify:  &status.Report{OK: false, Finished: t0.Add(-2 * time.Hour)},
		Drill:   &status.Report{OK: true, Finished: t0.Add(-3 * time.Hour), RTOSeconds: 41.5},
		Offsite: &status.Offsite{LagSeconds: 60},
		Dumps:   []status.Newest{{Name: "app", Count: 2, ID: "20261122T100000Z", EndTime: t0.Add(-4 * time.Hour)}},
	}
	job := MonitorJob([]Monitored{
		{Name: "db1", Gather: func(context.Context) (*status.Status, error) { return good, nil }},
		{Name: "db2", Gather: func(context.Context) (*status.Status, error) { return nil, errors.New("connection refused") }},
	}, time.Hour)
	m := newMetrics(func() time.Time { return now }, "test", nil, nil)
	run := job.bind(m, func() time.Time { return now })
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // one round, then it returns
	if err := run(ctx, false); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(10 * time.Second)
	_, body := get(t, m.handler(health{}), "/metrics")
	for _, want := range []string{
		`pitr_monitor_up{cluster="db1"} 1`,
		`pitr_monitor_up{cluster="db2"} 0`,
		`pitr_monitor_last_success_timestamp_seconds{cluster="db2"} 0`,
		`pitr_backup_newest_timestamp_seconds{cluster="db1"} 1.7953524e+09`,
		`pitr_backups{cluster="db1"} 1`,
		`pitr_wal_newest_timestamp_seconds{cluster="db1"} 1.79535597e+09`,
		`pitr_wal_gaps{cluster="db1"} 1`,
		`pitr_verify_last_ok{cluster="db1"} 0`,
		`pitr_drill_last_ok{cluster="db1"} 1`,
		`pitr_drill_rto_seconds{cluster="db1"} 41.5`,
		`pitr_copy_lag_seconds{cluster="db1"} 70`,
		`pitr_dump_newest_timestamp_seconds{cluster="db1",db="app"} 1.7953416e+09`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no %s in:\n%s", want, grepMetrics(body, "pitr_"))
		}
	}
	if strings.Contains(body, `pitr_backup_newest_timestamp_seconds{cluster="db2"}`) {
		t.Errorf("db2 was never read but exports a backup time")
	}
}

func grepMetrics(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
