package retry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/storage"
)

var _ storage.Storage = (*Store)(nil)

// Store wraps a storage.Storage and retries each call that fails with a
// transient error, with the backoff of Do, until the policy's time runs out
// (per call, not in all: bound the whole job with its context). It never
// retries an error wrapping storage.ErrNotExist, storage.ErrExist or
// storage.ErrPermanent (which a store's storage.ErrLocked wraps too), one
// from a context that ended (or a cancelled one), an invalid key or range,
// or an error returned by List's fn. Retries are logged at warn level by
// the logger in the call's context.
//
// Put and Create retry only when the reader can be read again from where
// the call found it: an io.Seeker (*os.File, *bytes.Reader,
// *strings.Reader) or a *bytes.Buffer. Any other reader (a pipe, an
// encrypting stream) is tried once, since the bytes it gave are gone.
//
// Get and GetRange retry opening the object; a body that breaks while it is
// read is the caller's to handle (a Storage cannot know the caller still
// wants the same bytes).
//
// List never calls fn twice for one object: a listing that fails after fn
// saw some objects resumes after the last key delivered.
type Store struct {
	inner  storage.Storage
	policy Policy
}

// New wraps st. A Store given for st is unwrapped first, so that wrapping
// twice gives one layer of retries with the new policy.
func New(st storage.Storage, p Policy) *Store {
	if r, ok := st.(*Store); ok {
		st = r.inner
	}
	return &Store{inner: st, policy: p}
}

// Unwrap returns the wrapped store, for storage.UploadsOf and
// storage.LockerOf: a Locker's calls go to the store itself, whose SDK
// retries them per request.
func (s *Store) Unwrap() storage.Storage { return s.inner }

// do runs fn under the policy, marking the errors retrying cannot fix.
func (s *Store) do(ctx context.Context, op, key string, fn func(ctx context.Context) error) error {
	return Do(ctx, s.policy, func(ctx context.Context) error {
		err := fn(ctx)
		if err != nil && !Transient(err) {
			return Permanent(err)
		}
		return err
	}, func(err error, wait time.Duration) {
		zerolog.Ctx(ctx).Warn().Err(err).Str("op", op).Str("key", key).
			Dur("retry_in", wait.Round(time.Millisecond)).Msg("storage call failed; retrying")
	})
}

// Transient reports whether retrying err might help: false for errors
// wrapping storage.ErrNotExist, storage.ErrExist, storage.ErrPermanent or
// context.Canceled, and for those marked Permanent.
func Transient(err error) bool {
	return err != nil && !errors.Is(err, storage.ErrNotExist) && !errors.Is(err, storage.ErrExist) &&
		!errors.Is(err, storage.ErrPermanent) && !errors.Is(err, context.Canceled) && !IsPermanent(err)
}

// once reports whether the call must not be retried: the stores reject an
// invalid key at once, and retrying cannot make it valid.
func once(key string) bool { return !storage.ValidKey(key) }

// rereadable returns a reader that each attempt can start again from r's
// current position, or nil if r cannot be read again.
func rereadable(r io.Reader) func() (io.Reader, error) {
	orig := r
	switch r := r.(type) {
	case *bytes.Buffer:
		b := r.Bytes() // not consumed: each attempt reads its own copy
		return func() (io.Reader, error) { return bytes.NewReader(b), nil }
	case io.Seeker:
		start, err := r.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil
		}
		first := true
		return func() (io.Reader, error) {
			if first {
				first = false
				return orig, nil
			}
			if _, err := r.Seek(start, io.SeekStart); err != nil {
				return nil, Permanent(err)
			}
			return orig, nil
		}
	}
	return nil
}

func (s *Store) write(ctx context.Context, op, key string, r io.Reader, fn func(context.Context, string, io.Reader) error) error {
	next := rereadable(r)
	if next == nil || once(key) {
		return fn(ctx, key, r)
	}
	err := s.do(ctx, op, key, func(ctx context.Context) error {
		r, err := next()
		if err != nil {
			return err
		}
		return fn(ctx, key, r)
	})
	if buf, ok := r.(*bytes.Buffer); ok && err == nil {
		buf.Reset() // consumed, as the wrapped store would have left it
	}
	return err
}

// Put retries only a re-readable r (see Store).
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	return s.write(ctx, "put", key, r, s.inner.Put)
}

// Create retries only a re-readable r (see Store). A retry after a lost
// answer can find the object its own earlier attempt stored and report
// storage.ErrExist, as storage.Storage's Create allows.
func (s *Store) Create(ctx context.Context, key string, r io.Reader) error {
	return s.write(ctx, "create", key, r, s.inner.Create)
}

// Get retries opening the object.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if once(key) {
		return s.inner.Get(ctx, key)
	}
	var rc io.ReadCloser
	err := s.do(ctx, "get", key, func(ctx context.Context) error {
		var err error
		rc, err = s.inner.Get(ctx, key)
		return err
	})
	return rc, err
}

// GetRange retries opening the range.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if once(key) || storage.CheckRange(offset, length) != nil {
		return s.inner.GetRange(ctx, key, offset, length)
	}
	var rc io.ReadCloser
	err := s.do(ctx, "get", key, func(ctx context.Context) error {
		var err error
		rc, err = s.inner.GetRange(ctx, key, offset, length)
		return err
	})
	return rc, err
}

// Stat retries.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if once(key) {
		return s.inner.Stat(ctx, key)
	}
	var oi storage.ObjectInfo
	err := s.do(ctx, "stat", key, func(ctx context.Context) error {
		var err error
		oi, err = s.inner.Stat(ctx, key)
		return err
	})
	return oi, err
}

// List retries, resuming after the last key fn was given; an error from fn
// ends it at once.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	var last string
	delivered := false
	return s.do(ctx, "list", prefix, func(ctx context.Context) error {
		var fnErr error
		err := s.inner.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			if delivered && oi.Key <= last {
				return nil // given to fn by an earlier attempt
			}
			if fnErr = fn(oi); fnErr != nil {
				return fnErr
			}
			last, delivered = oi.Key, true
			return nil
		})
		if fnErr != nil {
			if err == nil {
				err = fnErr
			}
			return Permanent(err)
		}
		return err
	})
}

// Delete retries.
func (s *Store) Delete(ctx context.Context, key string) error {
	if once(key) {
		return s.inner.Delete(ctx, key)
	}
	return s.do(ctx, "delete", key, func(ctx context.Context) error { return s.inner.Delete(ctx, key) })
}
