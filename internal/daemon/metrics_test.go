package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/wal/stream"
)

var t0 = time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthz(t *testing.T) {
	connected := func(c bool) func() stream.Status { return func() stream.Status { return stream.Status{Connected: c} } }
	for _, tc := range []struct {
		name       string
		status     func() stream.Status
		maxAge     time.Duration
		lastBackup time.Time // zero: none
		now        time.Time // the daemon started at t0
		code       int
		body       string
	}{
		{"streaming off, no backups scheduled", nil, 0, time.Time{}, t0.Add(time.Hour), 200, "ok"},
		{"connected, recent backup", connected(true), 48 * time.Hour, t0.Add(-47 * time.Hour), t0, 200, "ok"},
		{"receiver down", connected(false), 48 * time.Hour, t0, t0, 503, "wal receiver is not connected"},
		{"backup too old", nil, 48 * time.Hour, t0.Add(-49 * time.Hour), t0, 503, "last backup ended 49h0m0s ago, more than 48h0m0s"},
		{"no backup, just started", connected(true), 48 * time.Hour, time.Time{}, t0.Add(time.Hour), 200, "ok"},
		{"no backup for too long", nil, 48 * time.Hour, time.Time{}, t0.Add(50 * time.Hour), 503, "no backup yet; daemon started 50h0m0s ago"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			m := newMetrics(func() time.Time { return now }, "test", tc.status, nil)
			if !tc.lastBackup.IsZero() {
				m.backupDone(tc.lastBackup, time.Minute)
			}
			now = tc.now
			code, body := get(t, m.handler(health{status: tc.status, backupMaxAge: tc.maxAge}), "/healthz")
			if code != tc.code || !strings.HasPrefix(body, tc.body) || strings.Count(body, "\n") != 1 {
				t.Errorf("healthz = %d %q, want %d %q (one line)", code, body, tc.code, tc.body)
			}
		})
	}
}

func TestMetricsHandler(t *testing.T) {
	now := t0
	st := stream.Status{Connected: true, Timeline: 2, StoredLSN: pglogrepl.LSN(0x3000000), StoredAt: t0.Add(-5 * time.Second),
		ServerLSN: pglogrepl.LSN(0x3000400), UploadedBytes: 1234, WALBytes: 5678, Segments: 3, Errors: 1}
	m := newMetrics(func() time.Time { return now }, "test", func() stream.Status { return st }, nil)
	h := m.hooks("backup")
	h.started()
	h.done(errors.New("x"))
	h.started()
	h.done(nil)
	m.backupDone(t0.Add(-time.Hour), 90*time.Second)
	m.dumpDone("app", t0.Add(-30*time.Minute))
	m.hooks("dump")

	code, body := get(t, m.handler(health{}), "/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		"pitr_last_backup_success_timestamp_seconds 1.7953524e+09",
		"pitr_last_backup_duration_seconds 90",
		`pitr_job_runs_total{job="backup"} 2`,
		`pitr_job_failures_total{job="backup"} 1`,
		`pitr_job_runs_total{job="dump"} 0`,
		`pitr_last_dump_success_timestamp_seconds{db="app"} 1.7953542e+09`,
		"pitr_stream_connected 1",
		"pitr_stream_timeline 2",
		"pitr_stream_stored_lsn 5.0331648e+07",
		"pitr_stream_stored_age_seconds 5",
		"pitr_stream_lag_bytes 1024",
		"pitr_stream_uploaded_bytes_total 1234",
		"pitr_stream_wal_bytes_total 5678",
		"pitr_stream_segments_total 3",
		"pitr_stream_errors_total 1",
		`pitr_build_info{version="test"} 1`,
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if code, _ := get(t, m.handler(health{}), "/other"); code != 404 {
		t.Errorf("/other: %d", code)
	}

	// Streaming off: no stream metrics at all.
	off := newMetrics(time.Now, "test", nil, nil)
	if _, body := get(t, off.handler(health{}), "/metrics"); strings.Contains(body, "pitr_stream_") {
		t.Error("stream metrics without a receiver")
	}
}

// fakeReceiver connects at once and stops when told.
type fakeReceiver struct{ connected chan struct{} }

func (f *fakeReceiver) Run(ctx context.Context) error {
	close(f.connected)
	<-ctx.Done()
	return nil
}

func (f *fakeReceiver) Status() stream.Status {
	select {
	case <-f.connected:
		return stream.Status{Connected: true}
	default:
		return stream.Status{}
	}
}

// TestRun runs the whole daemon: backups and a flaky dump job on fast
// schedules, the HTTP server on a free port, then a clean stop.
func TestRun(t *testing.T) {
	var mu sync.Mutex
	backups, others, dumps := 0, 0, map[string]int{}
	dumpFailures := 0
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Jobs: []Job{
				ReceiverJob(&fakeReceiver{connected: make(chan struct{})}),
				BackupJob(every(30*time.Millisecond), func(context.Context) error {
					mu.Lock()
					backups++
					mu.Unlock()
					return nil
				}),
				DumpJob(every(40*time.Millisecond), []string{"a", "b"}, func(_ context.Context, db string) error {
					mu.Lock()
					defer mu.Unlock()
					dumps[db]++
					if db == "b" && dumpFailures == 0 {
						dumpFailures++
						return errors.New("b is busy")
					}
					return nil
				}),
				{Name: "other", Schedule: every(25 * time.Millisecond), Run: func(context.Context, bool) error {
					mu.Lock()
					others++
					mu.Unlock()
					return nil
				}},
			},
			RetryBackoff: 20 * time.Millisecond,
			MetricsAddr:  "127.0.0.1:0",
			Listening:    func(a string) { addr <- a },
			Version:      "test",
			Previous: func(context.Context) (Previous, error) {
				return Previous{Dumps: map[string]time.Time{"a": t0, "b": t0}}, nil
			},
		})
	}()
	base := "http://" + <-addr
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			n, nb, no := backups, dumps["b"], others
			mu.Unlock()
			if resp.StatusCode == 200 && string(body) == "ok\n" && n >= 2 && nb >= 2 && no >= 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not healthy with backups and dumps after 5s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"pitr_last_backup_success_timestamp_seconds ", "pitr_stream_connected 1", `pitr_last_dump_success_timestamp_seconds{db="a"}`,
		`pitr_job_runs_total{job="backup"}`, `pitr_job_runs_total{job="dump"}`, `pitr_job_runs_total{job="other"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(body), "pitr_last_backup_success_timestamp_seconds 0\n") {
		t.Error("last backup time not set")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	if dumps["a"] < 1 || dumpFailures != 1 {
		t.Errorf("dumps %v, %d failures", dumps, dumpFailures)
	}
}

// TestDumpJobRetriesFailedOnly: a retry redoes only the databases that
// failed; a scheduled run does them all.
func TestDumpJobRetriesFailedOnly(t *testing.T) {
	var calls []string
	fail := map[string]bool{"b": true, "c": true}
	m := newMetrics(time.Now, "test", nil, nil)
	fn := DumpJob(every(time.Hour), []string{"a", "b", "c"}, func(_ context.Context, db string) error {
		calls = append(calls, db)
		if fail[db] {
			return errors.New(db + " failed")
		}
		return nil
	}).bind(m, time.Now)
	err := fn(t.Context(), false)
	if err == nil || err.Error() != "2 of 3 dumps failed: b failed; c failed" {
		t.Fatalf("first run: %v", err)
	}
	fail["b"] = false
	if err := fn(t.Context(), true); err == nil || err.Error() != "1 of 2 dumps failed: c failed" {
		t.Fatalf("retry: %v", err)
	}
	fail["c"] = false
	if err := fn(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if err := fn(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(calls, ","), "a,b,c,b,c,c,a,b,c"; got != want {
		t.Errorf("dumped %s, want %s", got, want)
	}
}

// TestRunJobList: a job without a schedule runs once for the daemon's
// life and its failure stops the daemon, named; a bad list is refused.
func TestRunJobList(t *testing.T) {
	err := Run(t.Context(), Options{Jobs: []Job{
		{Name: "copy", Schedule: every(time.Hour), Run: func(context.Context, bool) error { return nil }},
		{Name: "watcher", Run: func(context.Context, bool) error { return errors.New("gave up") }},
	}})
	if err == nil || err.Error() != "watcher: gave up" {
		t.Errorf("Run with a failing long-running job = %v, want %q", err, "watcher: gave up")
	}
	noop := func(context.Context, bool) error { return nil }
	for _, tc := range []struct {
		name string
		jobs []Job
		want string
	}{
		{"no name", []Job{{Run: noop}}, "daemon: a job needs a name and a run function"},
		{"no run", []Job{{Name: "x"}}, "daemon: a job needs a name and a run function"},
		{"same name", []Job{{Name: "x", Run: noop}, {Name: "x", Run: noop}}, `daemon: two jobs named "x"`},
	} {
		if err := Run(t.Context(), Options{Jobs: tc.jobs}); err == nil || err.Error() != tc.want {
			t.Errorf("%s: Run = %v, want %q", tc.name, err, tc.want)
		}
	}
}
