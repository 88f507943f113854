package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal/stream"
)

// TestStoreOutage follows a store that goes down while the receiver stays
// connected (as with MinIO stopped for a minute): /metrics reports the
// store down at once, /healthz turns 503 naming the store and the stored
// WAL's age once the outage passes the limit, and both recover.
func TestStoreOutage(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	faulty := storagetest.NewFaulty(storagetest.NewMemory())
	mon := NewStoreMonitor(faulty, clock)
	st := stream.Status{Connected: true, Timeline: 1, StoredLSN: 0x3000000, StoredAt: t0, ServerLSN: 0x3000000}
	m := newMetrics(clock, "test", func() stream.Status { return st }, mon.Status)
	h := m.handler(health{status: func() stream.Status { return st }, store: mon.Status, storeMaxOutage: time.Minute})
	ctx := t.Context()
	healthz := func(wantCode int, want ...string) {
		t.Helper()
		code, body := get(t, h, "/healthz")
		ok := code == wantCode && strings.Count(body, "\n") == 1 && strings.HasSuffix(body, "\n")
		for _, w := range want {
			ok = ok && strings.Contains(body, w)
		}
		if !ok {
			t.Errorf("healthz = %d %q, want %d with %q, one line", code, body, wantCode, want)
		}
	}
	metrics := func(want ...string) {
		t.Helper()
		_, body := get(t, h, "/metrics")
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				t.Errorf("metrics lack %q", w)
			}
		}
	}

	if err := mon.Put(ctx, "a", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	healthz(200, "ok")
	metrics("pitr_store_up 1", "pitr_store_consecutive_failures 0", "pitr_store_last_success_timestamp_seconds 1.795356e+09",
		"pitr_store_failing_seconds 0", "pitr_stream_connected 1")

	faulty.SetDown(true)
	now = t0.Add(time.Second)
	st.ServerLSN = 0x3000400 // the server flushes WAL the receiver cannot store
	st.BehindSince = now
	if err := mon.Put(ctx, "b", strings.NewReader("x")); err == nil {
		t.Fatal("put to a down store succeeded")
	}
	healthz(200, "ok") // not for long enough yet
	metrics("pitr_store_up 0", "pitr_store_consecutive_failures 1", `pitr_store_errors_total{kind="connection refused"} 1`,
		`pitr_store_last_error_info{kind="connection refused"} 1`, "pitr_stream_connected 1")

	now = t0.Add(62 * time.Second)
	mon.probe(ctx, time.Second, time.Second) // idle for 61s: probed, fails too
	healthz(503, "storage failing for 1m1s (2 requests in a row, last: connection refused)", "last success 1m2s ago",
		"streamed wal waiting 1m1s to be stored")
	metrics("pitr_store_up 0", "pitr_store_consecutive_failures 2", "pitr_store_failing_seconds 61", "pitr_stream_stored_age_seconds 61")

	faulty.SetDown(false)
	now = t0.Add(63 * time.Second)
	mon.probe(ctx, time.Second, time.Second)
	metrics("pitr_store_up 1", "pitr_store_consecutive_failures 0", `pitr_store_last_error_info{kind="connection refused"} 1`)
	// The store answers; the receiver has not caught up yet.
	healthz(503, "streamed wal waiting 1m2s to be stored, more than 1m0s")
	st.StoredLSN, st.StoredAt = st.ServerLSN, now
	st.BehindSince = time.Time{}
	healthz(200, "ok")
}

// TestStoreMonitorCounts: what counts as the store failing, and what does
// not (a missing key, the caller giving up, the caller's own reader or
// List callback failing); a probe only when idle.
func TestStoreMonitorCounts(t *testing.T) {
	now := t0
	faulty := storagetest.NewFaulty(storagetest.NewMemory())
	mon := NewStoreMonitor(faulty, func() time.Time { return now })
	ctx := t.Context()
	failures := func(want int64) {
		t.Helper()
		if got := mon.Status().Failures; got != want {
			t.Errorf("failures = %d, want %d", got, want)
		}
	}
	if _, err := mon.Stat(ctx, "missing"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatal(err)
	}
	failures(0)
	if mon.Status().LastSuccess != t0 {
		t.Error("an absent key is not an answer")
	}
	boom := errors.New("pg_basebackup died")
	if err := mon.Put(ctx, "k", iotest.ErrReader(boom)); err == nil {
		t.Fatal("put with a failing reader succeeded")
	}
	failures(0)
	if err := mon.Put(ctx, "k", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := mon.List(ctx, "", func(storage.ObjectInfo) error { return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	failures(0)
	faulty.SetDown(true)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := mon.Delete(cctx, "k"); err == nil {
		t.Fatal("delete with a cancelled context on a down store succeeded")
	}
	failures(0)
	if err := mon.Delete(ctx, "k"); err == nil {
		t.Fatal("delete on a down store succeeded")
	}
	failures(1)
	faulty.Fail(storagetest.OpGet, 1, fmt.Errorf("get: %w", &fs.PathError{Op: "open", Path: "/secret/path", Err: syscall.EACCES}))
	faulty.SetDown(false)
	if _, err := mon.Get(ctx, "k"); err == nil {
		t.Fatal("get with an injected permission error succeeded")
	}
	failures(2)
	if k := mon.Status().LastErrorKind; k != "permission denied" {
		t.Errorf("kind %q", k)
	}

	stats := faulty.Calls(storagetest.OpStat)
	mon.probe(ctx, time.Minute, time.Second) // a request ended just now: no probe
	if faulty.Calls(storagetest.OpStat) != stats {
		t.Error("probed a busy store")
	}
	now = t0.Add(time.Minute)
	mon.probe(ctx, time.Minute, time.Second)
	if faulty.Calls(storagetest.OpStat) != stats+1 {
		t.Error("idle store not probed")
	}
	failures(0) // the marker's absence is an answer
	rc, err := mon.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	failures(0)
}

type apiError struct{ code string }

func (e apiError) Error() string {
	return "api error " + e.code + ": signature for key AKIA... does not match"
}
func (e apiError) ErrorCode() string { return e.code }

type statusError struct{ code int }

func (e statusError) Error() string {
	return fmt.Sprintf("https response error StatusCode: %d, url http://u:p@host", e.code)
}
func (e statusError) HTTPStatusCode() int { return e.code }

func TestErrorKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{storagetest.ErrDown, "connection refused"},
		{fmt.Errorf("put: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("put: %w", apiError{"SignatureDoesNotMatch"}), "s3 SignatureDoesNotMatch"},
		{apiError{"free text with a secret"}, "other"},
		{statusError{503}, "http 503"},
		{fmt.Errorf("x: %w", statusError{0}), "other"},
		{&fs.PathError{Op: "write", Path: "/repo/wal/x", Err: syscall.ENOSPC}, "no space left on device"},
		{io.ErrUnexpectedEOF, "connection reset"},
		{errors.New("password=hunter2"), "other"},
	} {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestStoredAgeAfterQuiet: WAL written after a quiet hour is not an hour
// old; WAL stuck since the stored position last moved is.
func TestStoredAgeAfterQuiet(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   stream.Status
		age  time.Duration
		ok   bool
	}{
		{"caught up", stream.Status{StoredLSN: 10, ServerLSN: 10, StoredAt: t0.Add(-time.Hour)}, 0, false},
		{"new write after a quiet hour", stream.Status{StoredLSN: 10, ServerLSN: 20, StoredAt: t0.Add(-time.Hour), BehindSince: t0.Add(-time.Second)}, time.Second, true},
		{"stuck", stream.Status{StoredLSN: 10, ServerLSN: 20, StoredAt: t0.Add(-time.Minute), BehindSince: t0.Add(-2 * time.Minute)}, time.Minute, true},
		{"nothing known", stream.Status{ServerLSN: pglogrepl.LSN(20)}, 0, false},
		{"nothing stored since the daemon started", stream.Status{StoredLSN: 10, ServerLSN: 20, BehindSince: t0.Add(-time.Minute)}, time.Minute, true},
	} {
		age, ok := storedAge(tc.st, t0)
		if age != tc.age || ok != tc.ok {
			t.Errorf("%s: storedAge = %s %v, want %s %v", tc.name, age, ok, tc.age, tc.ok)
		}
	}
}

// slowDown is a store whose every call takes 5s of the test clock and
// fails, like a client retrying a refused connection.
type slowDown struct {
	storage.Storage
	now *time.Time
}

func (s slowDown) Stat(context.Context, string) (storage.ObjectInfo, error) {
	*s.now = s.now.Add(5 * time.Second)
	return storage.ObjectInfo{}, storagetest.ErrDown
}

// TestStoreOutageCountsFromRequestStart: an outage is as old as its first
// failed request, not as the moment the client gave up on it.
func TestStoreOutageCountsFromRequestStart(t *testing.T) {
	now := t0
	mon := NewStoreMonitor(slowDown{now: &now}, func() time.Time { return now })
	mon.probe(t.Context(), time.Second, 10*time.Second)
	st := mon.Status()
	if !st.FailingSince.Equal(t0) || !st.LastRequest.Equal(t0.Add(5*time.Second)) || st.LastErrorKind != "connection refused" {
		t.Errorf("status %+v, want failing since %s", st, t0)
	}
}

// TestStoreMonitorConformance: the monitor forwards every method, Create
// and GetRange included, unchanged.
func TestStoreMonitorConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Storage {
		return NewStoreMonitor(storagetest.NewMemory(), nil)
	})
}

// TestStoreMonitorCreateExists: a Create refused with ErrExist is the
// store's answer, not an outage.
func TestStoreMonitorCreateExists(t *testing.T) {
	mon := NewStoreMonitor(storagetest.NewMemory(), nil)
	for range 2 {
		err := mon.Create(t.Context(), "k", strings.NewReader("x"))
		if err != nil && !errors.Is(err, storage.ErrExist) {
			t.Fatal(err)
		}
	}
	if st := mon.Status(); !st.Up() || st.LastSuccess.IsZero() {
		t.Errorf("status %+v after a refused Create, want up", st)
	}
}

// fileSeen records the reader Create was given.
type fileSeen struct {
	storage.Storage
	got io.Reader
}

func (f *fileSeen) Create(ctx context.Context, key string, r io.Reader) error {
	f.got = r
	return f.Storage.Create(ctx, key, r)
}

// A file, or bytes in memory, reach the store as they are (s3 then
// uploads them without a part buffer: the daemon's wal-push socket pushes
// several at once); another reader is wrapped to tell its errors apart.
func TestStoreMonitorPassesFiles(t *testing.T) {
	inner := &fileSeen{Storage: storagetest.NewMemory()}
	mon := NewStoreMonitor(inner, nil)
	f, err := os.CreateTemp(t.TempDir(), "seg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem := bytes.NewReader([]byte("sealed"))
	for i, r := range []io.Reader{f, mem, io.LimitReader(mem, 3)} {
		key := fmt.Sprint("k", i)
		if err := mon.Create(t.Context(), key, r); err != nil {
			t.Fatalf("Create of %T: %v", r, err)
		}
		if passed := inner.got == r; passed != (i < 2) {
			t.Errorf("%T reached the store as is: %v", r, passed)
		}
	}
}
