package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// StoreMonitor wraps the daemon's Storage and follows how its requests
// end, for /metrics and /healthz: a store that is down shows even while
// the receiver stays connected to the server. The daemon also probes the
// store (a Stat of the repository marker) when nothing else asked it for
// a while, so an outage shows on an idle daemon too.
//
// A request counts as a success when the store answered (ErrNotExist,
// ErrExist and ErrLocked included), as a failure when it did not, and not at all when the
// caller gave up (its context ended) or the caller's own reader or List
// callback failed.
type StoreMonitor struct {
	inner storage.Storage
	now   func() time.Time

	mu           sync.Mutex
	lastSuccess  time.Time
	lastRequest  time.Time
	failingSince time.Time // first failure since the last success; zero while up
	failures     int64     // consecutive
	lastKind     string    // the newest failure's kind
	kinds        map[string]int64
	recovered    chan struct{} // gets a value when a success ends failures (watchStore logs it)
}

var _ storage.Storage = (*StoreMonitor)(nil)

// NewStoreMonitor wraps s; now is the clock (time.Now if nil).
func NewStoreMonitor(s storage.Storage, now func() time.Time) *StoreMonitor {
	if now == nil {
		now = time.Now
	}
	return &StoreMonitor{inner: s, now: now, kinds: map[string]int64{}, recovered: make(chan struct{}, 1)}
}

// Unwrap returns the wrapped store.
func (m *StoreMonitor) Unwrap() storage.Storage { return m.inner }

// StoreStatus is a snapshot of a StoreMonitor.
type StoreStatus struct {
	LastSuccess   time.Time // zero: none yet
	LastRequest   time.Time // zero: none yet
	FailingSince  time.Time // zero while the newest request succeeded
	Failures      int64     // consecutive failed requests
	LastErrorKind string    // e.g. "connection refused", "timeout", "s3 AccessDenied"; never a URL or credential
	ErrorKinds    map[string]int64
}

// Up reports whether the newest request succeeded (or none was made).
func (s StoreStatus) Up() bool { return s.Failures == 0 }

// Status returns the current state.
func (m *StoreMonitor) Status() StoreStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	kinds := make(map[string]int64, len(m.kinds))
	for k, v := range m.kinds {
		kinds[k] = v
	}
	return StoreStatus{LastSuccess: m.lastSuccess, LastRequest: m.lastRequest, FailingSince: m.failingSince,
		Failures: m.failures, LastErrorKind: m.lastKind, ErrorKinds: kinds}
}

// observe records how a request that began at start ended. An outage
// counts from the start of its first failed request: a client's own
// retries can take seconds to give up.
func (m *StoreMonitor) observe(ctx context.Context, start time.Time, err error) {
	if err != nil && ctx.Err() != nil {
		return // the caller gave up; says nothing about the store
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastRequest = now
	if err == nil || errors.Is(err, storage.ErrNotExist) || errors.Is(err, storage.ErrExist) || errors.Is(err, storage.ErrLocked) {
		if m.failures > 0 {
			select {
			case m.recovered <- struct{}{}:
			default: // one is waiting already
			}
		}
		m.lastSuccess, m.failingSince, m.failures = now, time.Time{}, 0
		return
	}
	if m.failures == 0 {
		m.failingSince = start
	}
	m.failures++
	m.lastKind = ErrorKind(err)
	m.kinds[m.lastKind]++
}

// Put implements storage.Storage.
func (m *StoreMonitor) Put(ctx context.Context, key string, r io.Reader) error {
	start, cr := m.now(), &callerReader{r: r}
	err := m.inner.Put(ctx, key, source(r, cr))
	if err != nil && cr.err != nil {
		return err // the data's source failed, not necessarily the store
	}
	m.observe(ctx, start, err)
	return err
}

// Create implements storage.Storage; ErrExist is an answer.
func (m *StoreMonitor) Create(ctx context.Context, key string, r io.Reader) error {
	start, cr := m.now(), &callerReader{r: r}
	err := m.inner.Create(ctx, key, source(r, cr))
	if err != nil && cr.err != nil {
		return err // the data's source failed, not necessarily the store
	}
	m.observe(ctx, start, err)
	return err
}

// GetRange implements storage.Storage; errors reading the body count too.
func (m *StoreMonitor) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	start := m.now()
	rc, err := m.inner.GetRange(ctx, key, offset, length)
	m.observe(ctx, start, err)
	if err != nil {
		return nil, err
	}
	return &monitoredBody{ReadCloser: rc, m: m, ctx: ctx}, nil
}

// Get implements storage.Storage; errors reading the body count too.
func (m *StoreMonitor) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	start := m.now()
	rc, err := m.inner.Get(ctx, key)
	m.observe(ctx, start, err)
	if err != nil {
		return nil, err
	}
	return &monitoredBody{ReadCloser: rc, m: m, ctx: ctx}, nil
}

// Stat implements storage.Storage.
func (m *StoreMonitor) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	start := m.now()
	fi, err := m.inner.Stat(ctx, key)
	m.observe(ctx, start, err)
	return fi, err
}

// List implements storage.Storage; an error from fn is the caller's.
func (m *StoreMonitor) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	start := m.now()
	var fnErr error
	err := m.inner.List(ctx, prefix, func(fi storage.ObjectInfo) error {
		fnErr = fn(fi)
		return fnErr
	})
	if err == nil || fnErr == nil {
		m.observe(ctx, start, err)
	}
	return err
}

// Delete implements storage.Storage.
func (m *StoreMonitor) Delete(ctx context.Context, key string) error {
	start := m.now()
	err := m.inner.Delete(ctx, key)
	m.observe(ctx, start, err)
	return err
}

// probe asks the store for the repository marker unless a request ended
// within every; an absent marker is an answer too.
func (m *StoreMonitor) probe(ctx context.Context, every, timeout time.Duration) {
	m.mu.Lock()
	idle := m.lastRequest.IsZero() || m.now().Sub(m.lastRequest) >= every
	m.mu.Unlock()
	if !idle {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := m.now()
	_, err := m.inner.Stat(pctx, catalog.MarkerKey)
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		err = errProbeTimeout // our own deadline: the store did not answer
	}
	m.observe(ctx, start, err)
}

var errProbeTimeout = fmt.Errorf("store probe: %w", context.DeadlineExceeded)

// callerReader remembers an error of the reader a Put was given.
// source is what the store reads: cr, except for a file or bytes in
// memory (a bytes.Reader, wal-push's in-memory seal), which go as is: s3
// uploads those from where they are when they fit in one part, and the
// retry layer rewinds them; wrapped, each upload in flight is copied into
// a 16 MiB part buffer (issue 13: the daemon's peak RSS went from 45 to
// 68 MiB, and its CPU up by 30 %, once wal-push sealed in memory). A
// file's read errors then count against the store.
func source(r io.Reader, cr *callerReader) io.Reader {
	switch r.(type) {
	case *os.File, interface {
		io.ReaderAt
		io.Seeker
		Len() int
	}:
		return r
	}
	return cr
}

type callerReader struct {
	r   io.Reader
	err error
}

func (c *callerReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// monitoredBody counts a failed read of an object's body.
type monitoredBody struct {
	io.ReadCloser
	m   *StoreMonitor
	ctx context.Context
}

func (b *monitoredBody) Read(p []byte) (int, error) {
	start := b.m.now()
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.m.observe(b.ctx, start, err)
	}
	return n, err
}

// ErrorKind names the kind of a storage error in a few words that carry no
// URL, key or credential, for metrics labels and the health check.
func ErrorKind(err error) string {
	var coded interface{ ErrorCode() string } // S3 API errors (smithy.APIError)
	var status interface{ HTTPStatusCode() int }
	var dns *net.DNSError
	var netErr net.Error
	var errno syscall.Errno
	switch {
	case errors.As(err, &coded) && safeCode(coded.ErrorCode()) != "":
		return "s3 " + safeCode(coded.ErrorCode())
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.As(err, &dns):
		return "dns lookup failed"
	case errors.As(err, &status) && status.HTTPStatusCode() > 0:
		return fmt.Sprintf("http %d", status.HTTPStatusCode())
	case errors.As(err, &errno):
		return errno.Error() // "permission denied", "no space left on device"
	}
	return "other"
}

// safeCode keeps an API error code only if it looks like one
// ("AccessDenied", "SlowDown"), so no free text reaches a label.
func safeCode(code string) string {
	if code == "" || len(code) > 64 {
		return ""
	}
	for _, c := range code {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.') {
			return ""
		}
	}
	return code
}
