package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Schedule says when a job is due next after a moment; a zero time means
// never. config.ParseSchedule's cron schedules implement it.
type Schedule interface {
	Next(time.Time) time.Time
}

// job runs fn on a schedule: never two runs at once (a run still going
// when the next is due skips that one), and after a failure retries with
// exponential backoff, unless the next scheduled run comes first.
type job struct {
	name     string
	schedule Schedule
	// fn does the work; retry says the run repeats a failed one rather
	// than being a scheduled one.
	fn         func(ctx context.Context, retry bool) error
	bind       func(m *metrics, now func() time.Time) func(ctx context.Context, retry bool) error
	backoff    time.Duration // first retry delay
	maxBackoff time.Duration
	grace      time.Duration // how long a running fn may take to stop after ctx ends
	hooks      jobHooks
	noRetry    bool // a failed run waits for the next scheduled one
}

// jobHooks let metrics follow a job; nil members are skipped.
type jobHooks struct {
	started func()
	done    func(err error)
	skipped func()
}

// backoffDelay is the wait after the given number of consecutive
// failures: base, doubling, capped at max.
func backoffDelay(base, max time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// run loops until ctx ends. It returns nil after a clean stop (no run in
// progress, or the running one returned within grace), and an error when a
// run did not stop within grace; the abandoned run's context is cancelled
// already, so it leaves nothing half-listed (entries are written last).
func (j *job) run(ctx context.Context) error {
	log := zerolog.Ctx(ctx).With().Str("job", j.name).Logger()
	results := make(chan error, 1) // buffered: an abandoned run can still finish
	running, failures := false, 0
	var retryAt time.Time
	next := j.schedule.Next(time.Now())
	log.Info().Time("next_run", next).Msg("job scheduled")
	for {
		var due <-chan time.Time
		wake := next
		if !retryAt.IsZero() && (wake.IsZero() || retryAt.Before(wake)) {
			wake = retryAt
		}
		var timer *time.Timer
		if !wake.IsZero() {
			timer = time.NewTimer(max(time.Until(wake), 0))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			if !running {
				return nil
			}
			log.Info().Dur("grace", j.grace).Msg("stopping: waiting for the running job to stop")
			select {
			case <-results: //nolint:errcheck // stopped; an error now is the shutdown itself
				return nil
			case <-time.After(j.grace):
				return fmt.Errorf("%s still running %s after shutdown began; abandoned", j.name, j.grace)
			}
		case err := <-results:
			if timer != nil {
				timer.Stop()
			}
			running = false
			if j.hooks.done != nil {
				j.hooks.done(err)
			}
			if err == nil {
				failures, retryAt = 0, time.Time{}
				continue
			}
			if ctx.Err() != nil {
				continue // shutting down: the next select returns
			}
			failures++
			delay := backoffDelay(j.backoff, j.maxBackoff, failures)
			retryAt = time.Now().Add(delay)
			ev := log.Error().Err(err).Int("attempt", failures)
			if !j.noRetry && (next.IsZero() || retryAt.Before(next)) {
				ev.Dur("retry_in", delay).Msg("job failed; retrying")
			} else {
				retryAt = time.Time{}
				ev.Time("next_run", next).Msg("job failed; the next scheduled run retries")
			}
			continue
		case <-due:
		}
		now := time.Now()
		scheduled := !next.IsZero() && !now.Before(next)
		if scheduled {
			next = j.schedule.Next(now)
		}
		retry := !retryAt.IsZero() && !now.Before(retryAt)
		if !scheduled && !retry {
			continue
		}
		if running {
			if j.hooks.skipped != nil {
				j.hooks.skipped()
			}
			log.Warn().Time("next_run", next).Msg("job still running when due again; skipping this run")
			continue
		}
		retryAt = time.Time{}
		running = true
		if j.hooks.started != nil {
			j.hooks.started()
		}
		isRetry := !scheduled
		go func() { results <- j.fn(ctx, isRetry) }()
	}
}
