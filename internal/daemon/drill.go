package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DrillPrevious is the newest drill that passed before the daemon started,
// as the repository's reports say (zero End: none).
type DrillPrevious struct {
	End time.Time
	RTO time.Duration
}

// DrillJob runs restore drills on s. drill returns the measured time to
// restore of a drill that passed, and an error for one that failed (its
// report is in the repository) or could not run. A failed drill is not
// retried before the next scheduled run: it is a finding, not a transient
// error, and every try restores the whole cluster.
//
// Metrics: pitr_drill_last_success_timestamp_seconds and
// pitr_drill_last_rto_seconds (from prev until a drill of this daemon
// passes), and pitr_drill_failures_total.
func DrillJob(s Schedule, prev DrillPrevious, drill func(ctx context.Context) (rto time.Duration, err error)) Job {
	return Job{Name: "drill", Schedule: s, noRetry: true,
		bind: func(m *metrics, now func() time.Time) func(context.Context, bool) error {
			dm := newDrillMetrics(m.reg)
			if !prev.End.IsZero() {
				dm.passed(prev.End, prev.RTO)
			}
			return func(ctx context.Context, _ bool) error {
				rto, err := drill(ctx)
				switch {
				case err == nil:
					dm.passed(now(), rto)
				case ctx.Err() == nil: // an interrupted drill is no result
					dm.failures.Inc()
				}
				return err
			}
		}}
}

// drillMetrics are DrillJob's metrics, registered when the job is.
type drillMetrics struct {
	lastSuccess, lastRTO prometheus.Gauge
	failures             prometheus.Counter
}

func newDrillMetrics(reg *prometheus.Registry) *drillMetrics {
	dm := &drillMetrics{
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pitr_drill_last_success_timestamp_seconds",
			Help: "Unix time the newest restore drill that passed ended (0: none known)."}),
		lastRTO: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pitr_drill_last_rto_seconds",
			Help: "Time to restore measured by the newest restore drill that passed: unpacking the backup and recovering until the server accepted connections."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "pitr_drill_failures_total",
			Help: "Restore drills that failed (a check, amcheck, pg_verifybackup, the restore or recovery)."}),
	}
	reg.MustRegister(dm.lastSuccess, dm.lastRTO, dm.failures)
	return dm
}

func (dm *drillMetrics) passed(end time.Time, rto time.Duration) {
	dm.lastSuccess.Set(float64(end.UnixNano()) / 1e9)
	dm.lastRTO.Set(rto.Seconds())
}
