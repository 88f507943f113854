package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Retainer runs retention (pitr retain with the config's policies) after
// each successful scheduled job: the jobs Kick it, and its Job runs one
// retention at a time, coalescing kicks that arrive meanwhile. A failed
// run is logged and counted (pitr_retain_failures_total) and never stops
// the daemon: the next kick tries again.
type Retainer struct {
	run  func(ctx context.Context) error
	kick chan struct{}
}

// NewRetainer returns a Retainer that runs run.
func NewRetainer(run func(ctx context.Context) error) *Retainer {
	return &Retainer{run: run, kick: make(chan struct{}, 1)}
}

// Kick asks for a run; a nil Retainer ignores it.
func (r *Retainer) Kick() {
	if r == nil {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default: // one is pending already
	}
}

// Job is the daemon job that runs retention when kicked.
func (r *Retainer) Job() Job {
	return Job{Name: "retain", bind: func(m *metrics, now func() time.Time) func(context.Context, bool) error {
		runs := prometheus.NewCounter(prometheus.CounterOpts{Name: "pitr_retain_runs_total",
			Help: "Retention runs after scheduled jobs, failed ones included."})
		failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "pitr_retain_failures_total",
			Help: "Retention runs that failed (logged; the daemon goes on)."})
		last := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pitr_last_retain_success_timestamp_seconds",
			Help: "Unix time the last successful retention run ended (0: none yet)."})
		m.reg.MustRegister(runs, failures, last)
		return func(ctx context.Context, _ bool) error {
			log := zerolog.Ctx(ctx)
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-r.kick:
				}
				runs.Inc()
				start := now()
				err := r.run(ctx)
				switch {
				case ctx.Err() != nil:
					return nil
				case err != nil:
					failures.Inc()
					log.Error().Err(err).Msg("retention failed")
				default:
					last.Set(float64(now().UnixNano()) / 1e9)
					log.Info().Dur("took", now().Sub(start).Round(time.Millisecond)).Msg("retention done")
				}
			}
		}
	}}
}
