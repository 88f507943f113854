package daemon

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/config"
)

// every is due d after any moment.
type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

// once is due at one moment, then never.
type once time.Time

func (o once) Next(t time.Time) time.Time {
	if t.Before(time.Time(o)) {
		return time.Time(o)
	}
	return time.Time{}
}

func TestBackoffDelay(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {6, 32 * time.Minute},
		{7, time.Hour}, {100, time.Hour},
	} {
		if got := backoffDelay(time.Minute, time.Hour, tc.failures); got != tc.want {
			t.Errorf("backoffDelay(1m, 1h, %d) = %s, want %s", tc.failures, got, tc.want)
		}
	}
}

// TestNextRuns: the cron schedules the daemon gets from the settings, and
// the health check's interval between runs.
func TestNextRuns(t *testing.T) {
	from := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec     string
		first    time.Time
		interval time.Duration
	}{
		{"0 2 * * *", time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC), 24 * time.Hour},
		{"30 2 * * *", time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC), 24 * time.Hour},
		{"@weekly", time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), 7 * 24 * time.Hour},
		{"*/5 * * * * *", from.Add(5 * time.Second), 5 * time.Second},
	} {
		s, err := config.ParseSchedule(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Next(from); !got.Equal(tc.first) {
			t.Errorf("%q: next run %s, want %s", tc.spec, got, tc.first)
		}
		if got := interval(s, from); got != tc.interval {
			t.Errorf("%q: interval %s, want %s", tc.spec, got, tc.interval)
		}
	}
}

func runJob(t *testing.T, j *job, d time.Duration) error {
	t.Helper()
	if j.grace == 0 {
		j.grace = time.Second
	}
	if j.backoff == 0 {
		j.backoff, j.maxBackoff = time.Hour, time.Hour
	}
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	return j.run(ctx)
}

func TestJobRunsOnSchedule(t *testing.T) {
	var n atomic.Int32
	err := runJob(t, &job{name: "x", schedule: every(40 * time.Millisecond), fn: func(context.Context, bool) error {
		n.Add(1)
		return nil
	}}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got < 4 || got > 8 {
		t.Errorf("%d runs in 300ms every 40ms", got)
	}
}

func TestJobNeverOverlaps(t *testing.T) {
	var active, most, runs, skipped atomic.Int32
	j := &job{name: "slow", schedule: every(30 * time.Millisecond), fn: func(context.Context, bool) error {
		if a := active.Add(1); a > most.Load() {
			most.Store(a)
		}
		time.Sleep(100 * time.Millisecond)
		active.Add(-1)
		runs.Add(1)
		return nil
	}, hooks: jobHooks{skipped: func() { skipped.Add(1) }}}
	if err := runJob(t, j, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if most.Load() != 1 {
		t.Errorf("%d runs at once", most.Load())
	}
	if skipped.Load() == 0 || runs.Load() < 2 {
		t.Errorf("%d runs, %d skipped; want skips while a run is going", runs.Load(), skipped.Load())
	}
}

func TestJobRetriesWithBackoff(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	var retries []bool
	j := &job{name: "flaky", schedule: once(time.Now().Add(10 * time.Millisecond)),
		backoff: 40 * time.Millisecond, maxBackoff: time.Hour,
		fn: func(_ context.Context, retry bool) error {
			mu.Lock()
			defer mu.Unlock()
			at, retries = append(at, time.Now()), append(retries, retry)
			if len(at) <= 3 {
				return errors.New("storage down")
			}
			return nil
		}}
	if err := runJob(t, j, 800*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 4 {
		t.Fatalf("%d attempts, want 3 failures and a success", len(at))
	}
	if retries[0] || !retries[1] || !retries[3] {
		t.Errorf("retry flags %v, want false then true", retries)
	}
	for i, want := range []time.Duration{40, 80, 160} {
		gap := at[i+1].Sub(at[i])
		if w := want * time.Millisecond; gap < w || gap > w+100*time.Millisecond {
			t.Errorf("wait before attempt %d: %s, want about %s", i+2, gap, w)
		}
	}
}

// A retry due after the next scheduled run is left to that run.
func TestJobRetryYieldsToSchedule(t *testing.T) {
	var scheduled, retried atomic.Int32
	j := &job{name: "broken", schedule: every(50 * time.Millisecond), backoff: time.Hour, maxBackoff: time.Hour,
		fn: func(_ context.Context, retry bool) error {
			if retry {
				retried.Add(1)
			} else {
				scheduled.Add(1)
			}
			return errors.New("always")
		}}
	if err := runJob(t, j, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if scheduled.Load() < 3 || retried.Load() != 0 {
		t.Errorf("%d scheduled runs, %d retries", scheduled.Load(), retried.Load())
	}
}

func TestJobCancel(t *testing.T) {
	started := make(chan struct{})
	var sawCancel atomic.Bool
	j := &job{name: "long", schedule: every(time.Millisecond), fn: func(ctx context.Context, _ bool) error {
		close(started)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // cleaning up
		sawCancel.Store(true)
		return ctx.Err()
	}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	j.grace = time.Second
	go func() { done <- j.run(ctx) }()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil || !sawCancel.Load() {
			t.Fatalf("run = %v, job saw cancel %v; want a clean stop after the job returned", err, sawCancel.Load())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("run did not return after cancel")
	}

	// A job that ignores cancellation is abandoned after the grace time.
	stuck := &job{name: "stuck", schedule: every(time.Millisecond), grace: 50 * time.Millisecond,
		fn: func(context.Context, bool) error { time.Sleep(time.Second); return nil }}
	begin := time.Now()
	err := runJob(t, stuck, 30*time.Millisecond)
	if err == nil || time.Since(begin) > 500*time.Millisecond {
		t.Fatalf("stuck job: %v after %s; want an error after the grace time", err, time.Since(begin))
	}
}
