// Package retry runs an operation again after transient failures, with
// exponential backoff and jitter, until it succeeds, fails permanently, or
// the policy's time runs out: Do for any operation, and Store, which wraps
// a storage.Storage and retries each of its calls.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy bounds the retries. The zero value tries once.
type Policy struct {
	Timeout time.Duration // total time for all attempts; 0: one attempt
	Initial time.Duration // first backoff; default 200ms
	Max     time.Duration // backoff cap; default 5s
}

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying. Do returns err itself.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Do calls fn until it returns nil or a Permanent error, ctx ends, or the
// policy's timeout passes; it returns the last error (unwrapped from
// Permanent). onRetry, if not nil, is called before each wait.
func Do(ctx context.Context, p Policy, fn func(ctx context.Context) error, onRetry func(err error, wait time.Duration)) error {
	initial, maxWait := p.Initial, p.Max
	if initial <= 0 {
		initial = 200 * time.Millisecond
	}
	if maxWait <= 0 {
		maxWait = 5 * time.Second
	}
	deadline := time.Now().Add(p.Timeout)
	wait := initial
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		d := wait/2 + rand.N(wait/2+1)
		if d > left {
			d = left
		}
		if onRetry != nil {
			onRetry(err, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(wait*2, maxWait)
	}
}
