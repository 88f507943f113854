// Package limit caps the bandwidth of any storage.Storage: Store is a
// decorator whose uploads (Put, Create) and downloads (Get, GetRange) take
// their bytes from token buckets (golang.org/x/time/rate). One pair of
// limiters serves a whole process: every Store made with it, primary and
// off-site repository alike, and every transfer running at once share the
// same rate (see restic's internal/backend/limiter, rclone's --bwlimit).
//
// Requests without a body (Stat, List, Delete) are not limited, and
// neither are the protocol's own bytes (headers, listings): the limit is on
// object bytes, which is what a person sizes against a link.
package limit

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/time/rate"

	"github.com/pitr-dev/pitr/storage"
)

// Burst bounds of the limiters NewLimiter makes: a quarter of a second's
// bytes, at least minBurst (so reads are not tiny) and at most maxBurst (as
// rclone's --bwlimit). The bucket also holds the tokens that accrue while a
// transfer is busy elsewhere (a goroutine not scheduled, a part being
// hashed), up to the burst: with 50 ms at 20 MiB/s, two uploads sharing a
// limiter ran at 0.92 of it in bench/limit on a loaded machine (load 14 on
// 2 CPUs); with a quarter of a second, at 0.996. Its one-time head start
// is 2 % of a 200 MiB transfer.
const (
	minBurst = 32 << 10
	maxBurst = 4 << 20
)

// wholeMax is the largest body Put charges in full before passing it on
// unchanged: regular files and in-memory readers (*bytes.Reader,
// *strings.Reader) up to it keep s3.Store's paths that send them without a
// part buffer (wal-push has several spool files in flight). Larger ones
// are read through the limiter as they are sent, as is every other reader.
const wholeMax = 16 << 20

// NewLimiter returns a limiter of bytesPerSecond, with the burst Store
// expects, or nil (unlimited) for 0 or less.
func NewLimiter(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSecond), int(min(max(bytesPerSecond/4, minBurst), maxBurst)))
}

var _ storage.Storage = (*Store)(nil)

// Store limits the object bytes moved through the Storage it wraps. A nil
// limiter leaves that direction unlimited. Waits end with the context of
// the call (for a body: the context of the Get or Put that opened it).
type Store struct {
	inner    storage.Storage
	up, down *rate.Limiter
}

// New wraps st; up limits Put and Create bodies, down Get and GetRange
// bodies. Pass the same limiters to every Store of a process.
func New(st storage.Storage, up, down *rate.Limiter) *Store {
	return &Store{inner: st, up: up, down: down}
}

// Limiters returns the upload and download limiters (nil: unlimited).
func (s *Store) Limiters() (up, down *rate.Limiter) { return s.up, s.down }

// Unwrap returns the wrapped store, so storage.UploadsOf and
// storage.LockerOf see through the limit.
func (s *Store) Unwrap() storage.Storage { return s.inner }

// Put stores r, its bytes taken from the upload limiter.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	r, err := s.upload(ctx, r)
	if err != nil {
		return err
	}
	return s.inner.Put(ctx, key, r)
}

// Create is Put that refuses an existing key (see storage.Storage).
func (s *Store) Create(ctx context.Context, key string, r io.Reader) error {
	r, err := s.upload(ctx, r)
	if err != nil {
		return err
	}
	return s.inner.Create(ctx, key, r)
}

// upload returns the reader to hand the wrapped store: r itself once its
// bytes are paid for, when their number is known and small (see wholeMax),
// else a reader that pays as it is read.
func (s *Store) upload(ctx context.Context, r io.Reader) (io.Reader, error) {
	if s.up == nil {
		return r, nil
	}
	if n, ok := knownSize(r); ok && n <= wholeMax {
		if err := waitN(ctx, s.up, n); err != nil {
			return nil, err
		}
		return r, nil
	}
	return reader{ctx: ctx, r: r, lim: s.up}, nil
}

// knownSize is what is left to read of a regular file or an in-memory
// reader, without reading it.
func knownSize(r io.Reader) (int64, bool) {
	switch r := r.(type) {
	case *os.File:
		fi, err := r.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return 0, false
		}
		pos, err := r.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, false
		}
		return max(fi.Size()-pos, 0), true
	case interface {
		io.ReaderAt
		Len() int
	}:
		return int64(r.Len()), true
	}
	return 0, false
}

// Get opens the object; its body pays for its bytes as it is read.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.inner.Get(ctx, key)
	if err != nil || s.down == nil {
		return rc, err
	}
	return readCloser{reader{ctx: ctx, r: rc, lim: s.down}, rc}, nil
}

// GetRange opens part of the object, limited as Get.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := s.inner.GetRange(ctx, key, offset, length)
	if err != nil || s.down == nil {
		return rc, err
	}
	return readCloser{reader{ctx: ctx, r: rc, lim: s.down}, rc}, nil
}

// Stat is not limited.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	return s.inner.Stat(ctx, key)
}

// List is not limited.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	return s.inner.List(ctx, prefix, fn)
}

// Delete is not limited.
func (s *Store) Delete(ctx context.Context, key string) error { return s.inner.Delete(ctx, key) }

// reader pays lim for every byte read from r, after reading it: reads are
// cut to the limiter's burst, so one wait never asks for more than the
// bucket holds.
type reader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (r reader) Read(p []byte) (int, error) {
	if b := r.lim.Burst(); b > 0 && len(p) > b {
		p = p[:b]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := wait(r.ctx, r.lim, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

type readCloser struct {
	reader
	io.Closer
}

// waitN pays lim for n bytes in steps of at most its burst.
func waitN(ctx context.Context, lim *rate.Limiter, n int64) error {
	step := int64(max(lim.Burst(), 1))
	for n > 0 {
		k := min(n, step)
		if err := wait(ctx, lim, int(k)); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// wait is lim.WaitN; tests replace it to see the calls. A wait that the
// context's deadline would cut short fails at once.
var wait = func(ctx context.Context, lim *rate.Limiter, n int) error {
	if err := lim.WaitN(ctx, n); err != nil {
		return fmt.Errorf("bandwidth limit: %w", err)
	}
	return nil
}
