package s3

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// stallConn fails a read or write once nothing has moved on the connection,
// in either direction, for timeout. It is an idle timeout, not a cap on a
// transfer: a body that keeps moving may take as long as it needs.
//
// Both directions count because net/http reads while it writes: its read
// loop waits for the response during the whole upload of a request body,
// so a deadline on reads alone (the SDK's WithReadTimeout) would fail every
// upload longer than timeout, and one on writes alone would not notice a
// server that stops sending.
type stallConn struct {
	net.Conn
	timeout time.Duration
	start   time.Time    // monotonic base of last
	last    atomic.Int64 // since start, when a byte last moved either way
}

func newStallConn(c net.Conn, timeout time.Duration) *stallConn {
	return &stallConn{Conn: c, timeout: timeout, start: time.Now()}
}

func (c *stallConn) now() time.Duration { return time.Since(c.start) }

func (c *stallConn) moved() { c.last.Store(int64(c.now())) }

// quietSince is when the connection last did anything for a call that
// began at begin: a Read or Write counts its wait from its own start too,
// so a body that its reader left alone for a while (busy writing to disk)
// does not count as stalled.
func (c *stallConn) quietSince(begin time.Duration) time.Duration {
	return max(begin, time.Duration(c.last.Load()))
}

func (c *stallConn) deadline(begin time.Duration) time.Time {
	return c.start.Add(c.quietSince(begin) + c.timeout)
}

func (c *stallConn) stalled(begin time.Duration) bool {
	return c.now()-c.quietSince(begin) >= c.timeout
}

func (c *stallConn) Read(p []byte) (int, error) {
	begin := c.now()
	for {
		if err := c.SetReadDeadline(c.deadline(begin)); err != nil {
			return 0, err
		}
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.moved()
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if n > 0 {
			return n, nil // the next Read sets a new deadline
		}
		if c.stalled(begin) {
			return 0, &StallError{After: c.timeout}
		}
		// Bytes went out meanwhile: wait again from then.
	}
}

func (c *stallConn) Write(p []byte) (int, error) {
	begin := c.now()
	done := 0
	for {
		if err := c.SetWriteDeadline(c.deadline(begin)); err != nil {
			return done, err
		}
		n, err := c.Conn.Write(p[done:])
		done += n
		if n > 0 {
			c.moved()
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return done, err
		}
		if c.stalled(begin) {
			return done, &StallError{After: c.timeout}
		}
	}
}

// StallError is the error of a connection on which nothing moved for
// After. It is a net.Error whose Timeout() is true (the SDK retries it like
// a dropped connection) and wraps os.ErrDeadlineExceeded.
type StallError struct{ After time.Duration }

var _ net.Error = (*StallError)(nil)

func (e *StallError) Error() string {
	return fmt.Sprintf("storage connection stalled: nothing sent or received for %s", e.After)
}

// Unwrap lets errors.Is(err, os.ErrDeadlineExceeded) find it.
func (e *StallError) Unwrap() error { return os.ErrDeadlineExceeded }

// Temporary is part of net.Error's old interface, which the SDK's retryer
// still asks.
func (e *StallError) Temporary() bool { return true }

// Timeout is true: see StallError.
func (e *StallError) Timeout() bool { return true }
