package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// fast keeps the waits at a millisecond or two; nothing below asserts on
// elapsed time.
var fast = Policy{Timeout: time.Hour, Initial: time.Millisecond, Max: 2 * time.Millisecond}

// failing returns fn failing with errs in turn, then succeeding, and a
// counter of its calls.
func failing(errs ...error) (func(context.Context) error, *int) {
	calls := 0
	return func(context.Context) error {
		calls++
		if calls <= len(errs) {
			return errs[calls-1]
		}
		return nil
	}, &calls
}

func TestDo(t *testing.T) {
	transient := errors.New("connection reset")
	fatal := errors.New("access denied")
	for _, tt := range []struct {
		name    string
		policy  Policy
		errs    []error
		want    error // nil: success
		calls   int
		retries int
	}{
		{"success at once", fast, nil, nil, 1, 0},
		{"transient, then success", fast, []error{transient, transient}, nil, 3, 2},
		{"permanent stops at once", fast, []error{Permanent(fatal), transient}, fatal, 1, 0},
		{"permanent after transient", fast, []error{transient, Permanent(fatal)}, fatal, 2, 1},
		{"zero policy tries once", Policy{}, []error{transient}, transient, 1, 0},
		{"zero policy, permanent", Policy{}, []error{Permanent(fatal)}, fatal, 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fn, calls := failing(tt.errs...)
			var waits []time.Duration
			err := Do(t.Context(), tt.policy, fn, func(err error, wait time.Duration) {
				if err == nil {
					t.Error("onRetry got a nil error")
				}
				waits = append(waits, wait)
			})
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Do = %v, want %v", err, tt.want)
			}
			if IsPermanent(err) {
				t.Errorf("Do returned the Permanent wrapper: %v", err)
			}
			if *calls != tt.calls || len(waits) != tt.retries {
				t.Errorf("%d calls, %d retries; want %d, %d", *calls, len(waits), tt.calls, tt.retries)
			}
		})
	}
}

// TestDoBackoff: waits are jittered in [backoff/2, backoff], the backoff
// doubles from Initial and stays at Max.
func TestDoBackoff(t *testing.T) {
	p := Policy{Timeout: time.Hour, Initial: 100 * time.Microsecond, Max: 400 * time.Microsecond}
	errs := make([]error, 8)
	for i := range errs {
		errs[i] = errors.New("busy")
	}
	fn, _ := failing(errs...)
	var waits []time.Duration
	if err := Do(t.Context(), p, fn, func(_ error, d time.Duration) { waits = append(waits, d) }); err != nil {
		t.Fatal(err)
	}
	backoff := p.Initial
	for i, d := range waits {
		if d < backoff/2 || d > backoff {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, d, backoff/2, backoff)
		}
		backoff = min(backoff*2, p.Max)
	}
	if len(waits) != len(errs) {
		t.Errorf("%d waits, want %d", len(waits), len(errs))
	}
}

// TestDoDeadline: an operation that keeps failing gets its last error back
// once the policy's time is used up, and no wait runs past it.
func TestDoDeadline(t *testing.T) {
	p := Policy{Timeout: 20 * time.Millisecond, Initial: time.Millisecond, Max: 5 * time.Millisecond}
	calls := 0
	err := Do(t.Context(), p, func(context.Context) error {
		calls++
		return fmt.Errorf("attempt %d: unavailable", calls)
	}, func(_ error, d time.Duration) {
		if d > p.Max || d > p.Timeout {
			t.Errorf("wait %v beyond the cap", d)
		}
	})
	if err == nil || err.Error() != fmt.Sprintf("attempt %d: unavailable", calls) {
		t.Fatalf("Do = %v after %d calls, want the last attempt's error", err, calls)
	}
}

// TestDoContext: a cancelled context ends the retries with the
// operation's last error, during a wait or before the next attempt.
func TestDoContext(t *testing.T) {
	busy := errors.New("busy")
	t.Run("cancelled during a wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		calls := 0
		// The waits are an hour long: only the cancellation ends them.
		p := Policy{Timeout: 24 * time.Hour, Initial: time.Hour, Max: time.Hour}
		err := Do(ctx, p, func(context.Context) error { calls++; return busy }, func(error, time.Duration) { cancel() })
		if !errors.Is(err, busy) || calls != 1 {
			t.Fatalf("Do = %v after %d calls, want %v after 1", err, calls, busy)
		}
	})
	t.Run("cancelled during an attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		calls, retries := 0, 0
		err := Do(ctx, fast, func(ctx context.Context) error {
			calls++
			cancel()
			return ctx.Err()
		}, func(error, time.Duration) { retries++ })
		if !errors.Is(err, context.Canceled) || calls != 1 || retries != 0 {
			t.Fatalf("Do = %v after %d calls, %d retries; want context.Canceled after 1, none", err, calls, retries)
		}
	})
	t.Run("the attempt sees the context", func(t *testing.T) {
		type key struct{}
		ctx := context.WithValue(t.Context(), key{}, "v")
		err := Do(ctx, fast, func(ctx context.Context) error {
			if ctx.Value(key{}) != "v" {
				return Permanent(errors.New("wrong context"))
			}
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestPermanent(t *testing.T) {
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	base := errors.New("forbidden")
	p := Permanent(base)
	if !IsPermanent(p) || !IsPermanent(fmt.Errorf("put x: %w", p)) || IsPermanent(base) {
		t.Error("IsPermanent does not see through wrapping, or sees a plain error as permanent")
	}
	if !errors.Is(p, base) || p.Error() != base.Error() {
		t.Errorf("Permanent(%v) = %v: message or chain changed", base, p)
	}
}
