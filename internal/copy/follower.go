package copy

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// Follower keeps a target in step for the daemon: each Kick (after a
// backup, a dump or a file snapshot) asks for a copy, and Run does the
// copies one at a time. Kicks that come while a copy runs make one more
// copy after it, not one each: the next copy takes everything anyway.
type Follower struct {
	opts    Options
	kick    chan struct{}
	backoff time.Duration // first wait before a failed copy is tried again
	done    func(*Result, error)
}

// NewFollower returns a Follower copying with opts. A failed copy is
// tried again after backoff (default 1m), doubling up to an hour, unless a
// kick comes first. done, if not nil, is called after each copy.
func NewFollower(opts Options, backoff time.Duration, done func(*Result, error)) *Follower {
	if backoff <= 0 {
		backoff = time.Minute
	}
	return &Follower{opts: opts, kick: make(chan struct{}, 1), backoff: backoff, done: done}
}

// Kick asks for a copy; it never blocks. A nil Follower ignores it, so
// callers need not check whether an off-site repository is configured.
func (f *Follower) Kick() {
	if f == nil {
		return
	}
	select {
	case f.kick <- struct{}{}:
	default: // one is pending already
	}
}

// Run copies after each kick until ctx ends; it returns nil then. An
// interrupted copy is safe (see the package documentation): the next one
// picks up where it stopped.
func (f *Follower) Run(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	wait := f.backoff
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.kick:
		case <-retry:
		}
		retry = nil
		res, err := Run(ctx, f.opts)
		if ctx.Err() != nil {
			return nil
		}
		if f.done != nil {
			f.done(res, err)
		}
		if err != nil {
			log.Error().Err(err).Dur("retry_in", wait).Msg("off-site copy failed")
			t := time.NewTimer(wait)
			retry = t.C
			wait = min(2*wait, max(time.Hour, f.backoff))
			continue
		}
		wait = f.backoff
		c := Total(res.Copied)
		log.Info().Int64("objects", c.Objects).Int64("bytes", c.Bytes).Int64("skipped", Total(res.Skipped).Objects).
			Dur("took", res.Duration).Msg("off-site copy done")
	}
}
