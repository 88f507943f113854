package s3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage"
)

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSilentServer: every call to a store that accepts connections and
// never answers fails with a timeout error after Timeout per attempt,
// instead of hanging.
func TestSilentServer(t *testing.T) {
	opts := testOptions(testenv.SilentEndpoint(t))
	opts.Timeout = 200 * time.Millisecond
	opts.MaxAttempts = 1 // the SDK's backoff would only slow the test
	s, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	// Generous: only there so that a regression fails instead of hanging.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	errs := map[string]error{}
	errs["put"] = s.Put(ctx, "k", strings.NewReader("x"))
	errs["put multipart"] = s.Put(ctx, "k", bytes.NewReader(make([]byte, 2*MinPartSize+1)))
	_, errs["get"] = s.Get(ctx, "k")
	_, errs["stat"] = s.Stat(ctx, "k")
	errs["list"] = s.List(ctx, "", func(storage.ObjectInfo) error { return nil })
	errs["delete"] = s.Delete(ctx, "k")
	errs["list uploads"] = s.ListUploads(ctx, "", func(storage.Upload) error { return nil })
	for op, err := range errs {
		if !isTimeout(err) || errors.Is(err, storage.ErrNotExist) {
			t.Errorf("%s = %v, want a timeout of the request", op, err)
		}
		if errors.Is(err, storage.ErrPermanent) {
			t.Errorf("%s: a timeout is marked permanent: %v", op, err)
		}
	}
	if ctx.Err() != nil {
		t.Error("the calls ran into the test's own deadline")
	}
}

// TestStalledBody: a download whose body stops moving fails with a
// StallError rather than blocking the reader forever.
func TestStalledBody(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		if _, err := w.Write([]byte("0123456789")); err != nil {
			return // the client hung up; it reports what it got
		}
		w.(http.Flusher).Flush()
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	opts := testOptions(srv.URL)
	opts.Timeout = 200 * time.Millisecond
	s, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	var se *StallError
	if !errors.As(err, &se) || !isTimeout(err) {
		t.Fatalf("reading a stalled body = %q, %v; want a StallError", got, err)
	}
}

// TestSlowBodyNotCut: a body that keeps moving is read to its end however
// long it takes: Timeout is an idle timeout, not a cap on the transfer.
func TestSlowBodyNotCut(t *testing.T) {
	const n = 30
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "30")
		for i := 0; i < n; i++ {
			if _, err := w.Write([]byte{'a' + byte(i%26)}); err != nil {
				return // the client hung up; it reports the cut body
			}
			w.(http.Flusher).Flush()
			time.Sleep(25 * time.Millisecond) // 750ms in all, with Timeout 300ms
		}
	}))
	t.Cleanup(srv.Close)
	opts := testOptions(srv.URL)
	opts.Timeout = 300 * time.Millisecond
	s, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || len(got) != n {
		t.Fatalf("slow body: read %d bytes, %v; want %d", len(got), err, n)
	}
}

// TestStallConnBothWays uses net.Pipe, which buffers nothing: a write
// finishes only as fast as the peer reads.
func TestStallConnBothWays(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("silent peer", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		c := newStallConn(a, timeout)
		defer c.Close()
		_, err := c.Read(make([]byte, 1))
		var se *StallError
		if !errors.As(err, &se) {
			t.Fatalf("Read from a silent peer = %v, want StallError", err)
		}
	})
	t.Run("peer not reading", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		c := newStallConn(a, timeout)
		defer c.Close()
		_, err := c.Write([]byte("x"))
		var se *StallError
		if !errors.As(err, &se) {
			t.Fatalf("Write to a peer that does not read = %v, want StallError", err)
		}
	})
	// A body its reader left alone for longer than timeout (writing to a
	// slow disk, say) is not stalled: only waiting in Read counts.
	t.Run("late reader", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		c := newStallConn(a, timeout)
		defer c.Close()
		go func() {
			_, _ = b.Write([]byte("late")) // a failed write fails the read below
		}()
		time.Sleep(2 * timeout)
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "late" {
			t.Fatalf("Read after a pause = %q, %v", buf, err)
		}
	})
	// As in net/http: a Read waits for the response while a long request
	// body is written. Neither may fail while the write moves.
	t.Run("pending read during a slow write", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		c := newStallConn(a, timeout)
		defer c.Close()
		body := bytes.Repeat([]byte("x"), 40)
		go func() { // the peer: reads a byte every 25ms (1s in all), then answers
			br := bufio.NewReaderSize(b, 16)
			for range body {
				if _, err := br.ReadByte(); err != nil {
					return
				}
				time.Sleep(25 * time.Millisecond)
			}
			_, _ = b.Write([]byte("ok")) // a failed answer fails the pending read below
		}()
		read := make(chan error, 1)
		go func() {
			buf := make([]byte, 2)
			_, err := io.ReadFull(c, buf)
			if err == nil && string(buf) != "ok" {
				err = errors.New("read " + string(buf))
			}
			read <- err
		}()
		for i := range body { // one byte a Write, so every one waits on the peer
			if _, err := c.Write(body[i : i+1]); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		if err := <-read; err != nil {
			t.Fatalf("pending read failed while the write moved: %v", err)
		}
	})
}
