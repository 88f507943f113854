//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cronAt is a seconds cron line due once a day, at t (local time).
func cronAt(t time.Time) string {
	return fmt.Sprintf("%d %d %d * * *", t.Second(), t.Minute(), t.Hour())
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the first sample line that starts
// with name (labels included), or -1.
func metricValue(body, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestDaemonSchedules runs `pitr daemon` with archive_command shipping WAL
// (streaming off), a backup due in a few seconds and a dump right after:
// both get listed, /metrics and /healthz report them, and SIGTERM ends the
// daemon with status 0.
func TestDaemonSchedules(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	appDB(t, c)
	port, err := scratch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	env := append(backupEnv(c),
		"PITR_DAEMON_STREAM=false",
		"PITR_BACKUP_SCHEDULE="+cronAt(now.Add(3*time.Second)),
		"PITR_DUMP_DATABASES=app",
		"PITR_DUMP_SCHEDULE="+cronAt(now.Add(4*time.Second)),
		"PITR_DAEMON_RETRY_BACKOFF=1s",
		fmt.Sprintf("PITR_METRICS_ADDR=127.0.0.1:%d", port),
	)
	d := r.startDaemon(t, env...)

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var body string
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		var lo listOutput
		var ds []*catalog.Dump
		// No repository until the first job writes one: list fails then.
		if out, _, code := r.run("list", "--json"); code == 0 {
			if err := json.Unmarshal([]byte(out), &lo); err != nil {
				t.Fatal(err)
			}
			ds = r.dumps(nil)
		}
		// The daemon may not be listening yet on the first rounds.
		code, b, _ := tryGet(base + "/metrics")
		body = b
		return len(lo.Backups) == 1 && len(ds) == 2 && code == 200 && // app and _globals
				metricValue(body, "pitr_last_backup_success_timestamp_seconds") > 0 &&
				metricValue(body, `pitr_last_dump_success_timestamp_seconds{db="app"}`) > 0,
			fmt.Sprintf("%d backups, %d dumps; metrics:\n%s", len(lo.Backups), len(ds), body)
	})
	for name, want := range map[string]float64{
		`pitr_job_runs_total{job="backup"}`:     1,
		`pitr_job_failures_total{job="backup"}`: 0,
		`pitr_job_runs_total{job="dump"}`:       1,
		`pitr_job_failures_total{job="dump"}`:   0,
	} {
		if got := metricValue(body, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if d := metricValue(body, "pitr_last_backup_duration_seconds"); d <= 0 || d > 30 {
		t.Errorf("pitr_last_backup_duration_seconds = %v", d)
	}
	if metricValue(body, "pitr_stream_connected") != -1 {
		t.Error("stream metrics with streaming off")
	}
	if code, h := httpGet(t, base+"/healthz"); code != 200 || h != "ok\n" {
		t.Errorf("healthz = %d %q", code, h)
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal the daemon: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("daemon still running 15s after SIGTERM")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM", code)
	}
	if !strings.Contains(d.log.String(), "daemon stopped") {
		t.Error("daemon did not log a clean stop")
	}
}

// TestDaemonStreams runs `pitr daemon` with only the WAL receiver: its
// metrics follow the stream, /healthz reports its connection, and SIGTERM
// ends it with status 0.
func TestDaemonStreams(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(map[string]string{"archive_mode": "off"})
	port, err := scratch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	d := r.startDaemon(t, append(backupEnv(c), "PITR_BACKUP_SCHEDULE=", "PITR_DUMP_SCHEDULE=", fmt.Sprintf("PITR_METRICS_ADDR=127.0.0.1:%d", port))...)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	switched := false
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, body, err := tryGet(base + "/metrics")
		if err == nil && metricValue(body, "pitr_stream_connected") == 1 {
			if !switched {
				psql(t, c, "postgres", `CREATE TABLE x AS SELECT generate_series(1, 10000) i; SELECT pg_switch_wal()`)
				switched = true
			} else if metricValue(body, "pitr_stream_segments_total") >= 1 && metricValue(body, "pitr_stream_stored_lsn") > 0 &&
				metricValue(body, "pitr_stream_uploaded_bytes_total") > 0 && metricValue(body, "pitr_stream_wal_bytes_total") > 0 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("stream metrics not there (%v):\n%s", err, body)
	})
	if code, h := httpGet(t, base+"/healthz"); code != 200 || h != "ok\n" {
		t.Errorf("healthz = %d %q", code, h)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		code, h, _ := tryGet(base + "/healthz")
		return code == 503 && strings.Contains(h, "not connected"), fmt.Sprintf("healthz with the server down: %d %q", code, h)
	})
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal the daemon: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("daemon still running 15s after SIGTERM")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM", code)
	}
}

func tryGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestDaemonStoreOutage stops MinIO under a streaming daemon for a few
// seconds while the server writes: the receiver stays connected to
// PostgreSQL, but /metrics reports the store down and /healthz turns 503
// naming the store and the stored WAL's age; both recover once MinIO is
// back, and the WAL written meanwhile is stored.
func TestDaemonStoreOutage(t *testing.T) {
	r := newRig(t, "minio") // its MinIO is the test's own (testenv.MinIODedicated)
	c := r.cluster(map[string]string{"archive_mode": "off"})
	port, err := scratch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	d := r.startDaemon(t, append(backupEnv(c), "PITR_BACKUP_SCHEDULE=", "PITR_DUMP_SCHEDULE=", "PITR_STORE_MAX_OUTAGE=2s",
		fmt.Sprintf("PITR_METRICS_ADDR=127.0.0.1:%d", port))...)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var body string
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, body, _ = tryGet(base + "/metrics")
		return metricValue(body, "pitr_stream_connected") == 1 && metricValue(body, "pitr_store_up") == 1 &&
				metricValue(body, "pitr_stream_uploaded_bytes_total") > 0 && metricValue(body, "pitr_stream_lag_bytes") == 0,
			"stream not connected and caught up before the outage:\n" + grepLines(body, "pitr_store_", "pitr_stream_")
	})
	if code, h := httpGet(t, base+"/healthz"); code != 200 || h != "ok\n" {
		t.Fatalf("healthz before the outage = %d %q", code, h)
	}

	r.minio.Stop(t)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			r.minio.Start(t)
		}
	})
	psql(t, c, "postgres", `CREATE TABLE during_outage AS SELECT generate_series(1, 1000) i`)
	var h string
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		var code int
		code, h, _ = tryGet(base + "/healthz")
		return code == 503 && strings.Contains(h, "storage failing") && strings.Contains(h, "streamed wal waiting"),
			fmt.Sprintf("healthz does not report the outage: %d %q", code, h)
	})
	if strings.Count(h, "\n") != 1 || !regexp.MustCompile(`last: (connection refused|timeout)\)`).MatchString(h) ||
		strings.Contains(h, r.minio.Endpoint) {
		t.Errorf("healthz during the outage: %q, want one line naming the error's kind and no endpoint", h)
	}
	_, body, _ = tryGet(base + "/metrics")
	if metricValue(body, "pitr_store_up") != 0 || metricValue(body, "pitr_store_consecutive_failures") < 1 ||
		metricValue(body, "pitr_store_failing_seconds") < 2 || metricValue(body, "pitr_stream_stored_age_seconds") < 2 {
		t.Errorf("metrics during the outage:\n%s", grepLines(body, "pitr_store_", "pitr_stream_"))
	}

	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return strings.Contains(d.log.String(), "storage is failing"), "no log of the outage"
	})
	r.minio.Start(t)
	stopped = false
	psql(t, c, "postgres", `SELECT pg_switch_wal()`)
	// The stored position passes a segment as soon as its chunks cover
	// it; the segment counts as stored once it is sealed, a moment later.
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		code, h, _ := tryGet(base + "/healthz")
		_, body, _ = tryGet(base + "/metrics")
		return code == 200 && h == "ok\n" && metricValue(body, "pitr_store_up") == 1 && metricValue(body, "pitr_stream_lag_bytes") == 0 &&
				metricValue(body, "pitr_stream_segments_total") >= 1,
			fmt.Sprintf("not recovered from the outage (or no segment stored after it): healthz %d %q\n%s", code, h, grepLines(body, "pitr_store_", "pitr_stream_"))
	})
	// The watcher logs the end as the first success lands, on its own
	// goroutine: /healthz can turn ok a moment before.
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return strings.Contains(d.log.String(), "storage answers again"), "daemon did not log the outage's end"
	})
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal the daemon: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("daemon still running 15s after SIGTERM")
	}
}

// grepLines keeps the lines of s that start with one of prefixes.
func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// daemonProc is a pitr daemon a test started (rig.startDaemon).
type daemonProc struct {
	cmd    *exec.Cmd
	log    *lockedBuffer // its stderr
	exited chan struct{} // closed once it exited; its status is in cmd.ProcessState
}

// startDaemon starts pitr daemon with the rig's environment and env. At
// the end of the test it is killed if still running, and its log printed
// if the test failed.
func (r *rig) startDaemon(t *testing.T, env ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{cmd: exec.Command(r.pitr, "daemon"), log: &lockedBuffer{}, exited: make(chan struct{})}
	d.cmd.Env = append(append(os.Environ(), r.env...), env...)
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill() // it may have exited already
		<-d.exited
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log.String())
		}
	})
	return d
}
