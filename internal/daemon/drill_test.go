package daemon

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A failed drill waits for the next scheduled run: no retries.
func TestDrillJobNotRetried(t *testing.T) {
	var runs, retries atomic.Int32
	j := DrillJob(once(time.Now().Add(10*time.Millisecond)), DrillPrevious{}, func(context.Context) (time.Duration, error) {
		runs.Add(1)
		return 0, errors.New("restore drill failed: check app: returned 0")
	})
	m := newMetrics(time.Now, "test", nil, nil)
	fn := j.bind(m, time.Now)
	jj := &job{name: j.Name, schedule: j.Schedule, noRetry: j.noRetry, backoff: 10 * time.Millisecond, maxBackoff: 10 * time.Millisecond,
		fn: func(ctx context.Context, retry bool) error {
			if retry {
				retries.Add(1)
			}
			return fn(ctx, retry)
		}}
	if err := runJob(t, jj, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 1 || retries.Load() != 0 {
		t.Errorf("%d runs, %d retries; want 1 run, no retry", runs.Load(), retries.Load())
	}
	_, body := get(t, m.handler(health{}), "/metrics")
	if v := drillMetric(body, "pitr_drill_failures_total"); v != 1 {
		t.Errorf("pitr_drill_failures_total %v, want 1", v)
	}
}

func TestDrillJobMetrics(t *testing.T) {
	now := t0
	prev := DrillPrevious{End: t0.Add(-24 * time.Hour), RTO: 30 * time.Second}
	fail := true
	j := DrillJob(every(time.Hour), prev, func(context.Context) (time.Duration, error) {
		now = now.Add(time.Minute)
		if fail {
			return 0, errors.New("restore drill failed: amcheck")
		}
		return 42500 * time.Millisecond, nil
	})
	m := newMetrics(func() time.Time { return now }, "test", nil, nil)
	run := j.bind(m, func() time.Time { return now })
	check := func(success, rto, failures float64) {
		t.Helper()
		_, body := get(t, m.handler(health{}), "/metrics")
		for name, want := range map[string]float64{"pitr_drill_last_success_timestamp_seconds": success, "pitr_drill_last_rto_seconds": rto, "pitr_drill_failures_total": failures} {
			if got := drillMetric(body, name); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
	}
	check(float64(prev.End.Unix()), 30, 0)
	if err := run(t.Context(), false); err == nil {
		t.Fatal("failed drill returned no error")
	}
	check(float64(prev.End.Unix()), 30, 1)
	fail = false
	if err := run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	check(float64(t0.Add(2*time.Minute).Unix()), 42.5, 1)

	// An interrupted drill is not counted as failed.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fail = true
	if err := run(ctx, false); err == nil {
		t.Fatal("interrupted drill returned no error")
	}
	check(float64(t0.Add(2*time.Minute).Unix()), 42.5, 1)
}

// drillMetric returns the value of an unlabelled metric in a scrape, or -1.
func drillMetric(body, name string) float64 {
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}
