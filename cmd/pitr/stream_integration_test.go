//go:build integration

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/local"
	"github.com/pitr-dev/pitr/storage/s3"
	"github.com/pitr-dev/pitr/wal"
)

// receiver is a running `pitr wal-receive`.
type receiver struct {
	t   *testing.T
	cmd *exec.Cmd
	mu  sync.Mutex
	log bytes.Buffer
}

func (r *rig) startReceiver(c *scratch.Cluster, extra ...string) *receiver {
	r.t.Helper()
	rc := &receiver{t: r.t}
	rc.cmd = exec.Command(r.pitr, "wal-receive")
	rc.cmd.Env = append(append(append(os.Environ(), r.env...), backupEnv(c)...), extra...)
	rc.cmd.Stderr = rc
	if err := rc.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		rc.stop(syscall.SIGKILL)
		if r.t.Failed() {
			r.t.Logf("wal-receive log:\n%s", rc.output())
		}
	})
	return rc
}

func (rc *receiver) Write(p []byte) (int, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.log.Write(p)
}

func (rc *receiver) output() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.log.String()
}

// stop signals the receiver and returns its exit code.
func (rc *receiver) stop(sig syscall.Signal) int {
	if rc.cmd.ProcessState != nil {
		return rc.cmd.ProcessState.ExitCode()
	}
	// It may have exited by itself already: its exit code is the answer.
	_ = rc.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() {
		_ = rc.cmd.Wait() // the exit code is read from ProcessState
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = rc.cmd.Process.Kill() // it may exit meanwhile
		<-done
	}
	return rc.cmd.ProcessState.ExitCode()
}

// slotFlush returns the slot's restart_lsn as a number.
func slotRestart(t *testing.T, c *scratch.Cluster) int64 {
	t.Helper()
	n, err := c.QueryInt(t.Context(), `SELECT coalesce((SELECT restart_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'pitr'), 0)::bigint`)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitStreamed waits until the slot has confirmed the server's current
// flush position: everything written so far is in the repository.
func waitStreamed(t *testing.T, c *scratch.Cluster, rc *receiver, timeout time.Duration) {
	t.Helper()
	want, err := c.QueryInt(t.Context(), `SELECT (pg_current_wal_flush_lsn() - '0/0')::bigint`)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, timeout, func() (bool, string) {
		at := slotRestart(t, c)
		return at >= want, fmt.Sprintf("slot at %d, want %d\n%s", at, want, rc.output())
	})
}

func streamCluster(r *rig, settings map[string]string) *scratch.Cluster {
	s := map[string]string{"archive_mode": "off", "wal_keep_size": "0"}
	for k, v := range settings {
		s[k] = v
	}
	c := r.cluster(s)
	if err := c.Exec(r.t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL, at timestamptz DEFAULT clock_timestamp())`); err != nil {
		r.t.Fatal(err)
	}
	return c
}

// TestStreamKillBoth: with archive_mode off, a commit made two seconds
// before the server and the receiver are both killed with SIGKILL is there
// after restore --to latest.
func TestStreamKillBoth(t *testing.T) {
	for _, backend := range []string{"local", "minio"} {
		t.Run(backend, func(t *testing.T) {
			r := newRig(t, backend)
			c := streamCluster(r, nil)
			rc := r.startReceiver(c)
			insert(t, c, "before-backup", 100)
			r.mustRun(backupEnv(c), "backup")
			insert(t, c, "after-backup", 1000)
			if err := c.Exec(t.Context(), `INSERT INTO marker (phase) VALUES ('last-commit')`); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			rc.stop(syscall.SIGKILL)
			if err := c.Kill(); err != nil {
				t.Fatal(err)
			}
			dest := restoredDir(t)
			r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dest)
			c2 := r.startRestored(dest)
			if got, want := phaseCounts(t, c2), "after-backup=1000 before-backup=100 last-commit=1"; got != want {
				t.Fatalf("restored %q, want %q\nreceiver log:\n%s", got, want, rc.output())
			}
			t.Logf("receiver log:\n%s", rc.output())
		})
	}
}

func lines(s, substr string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// store opens the rig's repository in-process, to inspect its objects.
func (r *rig) store() storage.Storage {
	r.t.Helper()
	if r.repoDir != "" {
		st, err := local.Open(r.repoDir)
		if err != nil {
			r.t.Fatal(err)
		}
		return st
	}
	st, err := s3.New(r.t.Context(), s3.Options{
		Bucket: r.bucket, Prefix: "db1", Endpoint: r.minio.Endpoint, Region: r.minio.Region, ForcePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(r.minio.AccessKey, r.minio.SecretKey, ""),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// checkStreamed checks the repository holds each whole segment from first
// to last exactly once, byte-identical to pg_wal, with no chunks left.
func checkStreamed(t *testing.T, r *rig, c *scratch.Cluster, first, last string) int {
	t.Helper()
	full := map[string]int{}
	sealed := map[string]int{}
	chunks := map[string]int{}
	err := r.store().List(t.Context(), "wal/", func(oi storage.ObjectInfo) error {
		if o, ok := catalog.ParseWALKey(oi.Key); ok {
			full[o.Name]++
		} else if o, ok := catalog.ParseSealKey(oi.Key); ok {
			sealed[o.Name]++
		} else if ch, ok := catalog.ParseStreamChunkKey(oi.Key); ok {
			chunks[ch.Name]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(testenv.Dir(t), "RECOVERYXLOG")
	n := 0
	for name := first; name <= last; {
		// Once: a seal and the chunks it names, or (in very many chunks)
		// a whole copy, its chunks removed.
		if full[name]+sealed[name] != 1 || full[name] == 1 && chunks[name] != 0 || sealed[name] == 1 && chunks[name] == 0 {
			t.Fatalf("%s: %d whole copies, %d seals and %d chunks stored, want a seal and its chunks or a whole copy alone",
				name, full[name], sealed[name], chunks[name])
		}
		if _, stderr, code := r.runEnv([]string{"PITR_FETCH_PREFETCH=0"}, "wal-fetch", name, dest); code != 0 {
			t.Fatalf("wal-fetch %s: exit %d: %s", name, code, stderr)
		}
		orig, err := os.ReadFile(filepath.Join(c.DataDir, "pg_wal", name))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(orig, got) {
			t.Fatalf("%s: streamed copy differs from pg_wal", name)
		}
		n++
		seg, _ := wal.ParseName(name)
		name = seg.Next(16 << 20)
	}
	return n
}

// TestStreamStorageRestart: MinIO stops for seconds under a pgbench load.
// While it is down the slot does not move (the server keeps the WAL);
// after it returns, every segment is stored exactly once, byte-identical.
func TestStreamStorageRestart(t *testing.T) {
	r := newRig(t, "minio")
	c := streamCluster(r, map[string]string{"wal_keep_size": "1GB"})
	if _, err := c.RunAsOwner(t.Context(), "pgbench", "-i", "-s", "2", "-q"); err != nil {
		t.Fatal(err)
	}
	first, _ := c.QueryString(t.Context(), `SELECT pg_walfile_name(pg_current_wal_flush_lsn())`)
	rc := r.startReceiver(c)
	bench := c.Command(t.Context(), "pgbench", "-T", "10", "-c", "1")
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	// Bulk inserts alongside pgbench: several segments a second.
	stopBulk := make(chan struct{})
	bulkDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stopBulk:
				bulkDone <- nil
				return
			default:
			}
			if err := c.Exec(t.Context(), `INSERT INTO marker (phase) SELECT 'bulk' FROM generate_series(1, 20000)`); err != nil {
				bulkDone <- err
				return
			}
		}
	}()
	time.Sleep(2 * time.Second)
	r.minio.Stop(t)
	time.Sleep(time.Second)
	held := slotRestart(t, c)
	time.Sleep(3 * time.Second)
	if now := slotRestart(t, c); now != held {
		t.Fatalf("slot moved from %d to %d while the store was down", held, now)
	}
	flush, _ := c.QueryInt(t.Context(), `SELECT (pg_current_wal_flush_lsn() - '0/0')::bigint`)
	if flush-held < 32<<20 {
		t.Fatalf("only %d bytes written while the store was down; the test proves nothing", flush-held)
	}
	r.minio.Start(t)
	time.Sleep(2 * time.Second)
	close(stopBulk)
	if err := <-bulkDone; err != nil {
		t.Fatal(err)
	}
	if err := bench.Wait(); err != nil {
		t.Fatal(err)
	}
	last, _ := c.QueryString(t.Context(), `SELECT pg_walfile_name(pg_switch_wal())`)
	if err := c.Exec(t.Context(), `SELECT pg_switch_wal()`); err != nil { // the switch record must be streamed too
		t.Fatal(err)
	}
	waitStreamed(t, c, rc, 3*time.Minute)
	// SIGTERM: segments still being sealed (or stored whole) in the
	// background are done before the receiver exits 0.
	if code := rc.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("wal-receive exit %d after SIGTERM", code)
	}
	n := checkStreamed(t, r, c, first, last)
	t.Logf("%d segments streamed (%s to %s), %d bytes held in the slot while MinIO was down", n, first, last, flush-held)
	r.mustRun(backupEnv(c), "wal-receive", "--drop-slot")
	if n, _ := c.QueryInt(t.Context(), `SELECT count(*) FROM pg_replication_slots`); n != 0 {
		t.Fatalf("%d slots left after --drop-slot", n)
	}
	_, stderr, code := r.runEnv(backupEnv(c), "wal-receive", "--slot", "Bad-Name")
	if code != 2 || lines(stderr, "stream_slot") != 1 {
		t.Fatalf("bad slot name: exit %d, %q", code, stderr)
	}
}

// TestStreamRestartAndPromotion: the server restarts as a standby (the
// receiver reconnects) and is promoted (timeline 2) while streaming;
// restore --to latest brings back the rows of both timelines.
func TestStreamRestartAndPromotion(t *testing.T) {
	r := newRig(t, "local")
	c := streamCluster(r, map[string]string{"wal_keep_size": "1GB"})
	rc := r.startReceiver(c)
	insert(t, c, "tl1-before-backup", 10)
	r.mustRun(backupEnv(c), "backup")
	insert(t, c, "tl1", 100)
	waitStreamed(t, c, rc, time.Minute)

	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	signal := filepath.Join(c.DataDir, "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := scratch.ChownToPostgres(signal); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		return lines(rc.output(), "wal streaming started") >= 2, "receiver did not reconnect to the restarted server:\n" + rc.output()
	})
	if err := c.Exec(t.Context(), `SELECT pg_promote(true, 60)`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "tl2", 100)
	last, _ := c.QueryString(t.Context(), `SELECT pg_walfile_name(pg_switch_wal())`)
	if !strings.HasPrefix(last, "00000002") {
		t.Fatalf("after promotion the server writes %s", last)
	}
	waitStreamed(t, c, rc, time.Minute)
	if matches, _ := filepath.Glob(filepath.Join(r.repoDir, "wal", "timelines", "00000002.history.*")); len(matches) != 1 {
		t.Fatalf("timeline 2 history stored %d times\n%s", len(matches), rc.output())
	}
	if code := rc.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("wal-receive exit %d after SIGTERM", code)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	dest := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dest)
	c2 := r.startRestored(dest)
	if got, want := phaseCounts(t, c2), "tl1=100 tl1-before-backup=10 tl2=100"; got != want {
		t.Fatalf("restored %q, want %q", got, want)
	}
	t.Logf("receiver log:\n%s", rc.output())
}

// TestStreamSynchronous: with synchronous_standby_names naming the
// receiver, a commit returns only once its WAL is stored: kill -9 of both
// right after the last commit loses nothing.
func TestStreamSynchronous(t *testing.T) {
	r := newRig(t, "local")
	c := streamCluster(r, nil)
	rc := r.startReceiver(c, "PITR_STREAM_SYNCHRONOUS=true")
	if err := c.Exec(t.Context(), `ALTER SYSTEM SET synchronous_standby_names = 'pitr'`); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(t.Context(), `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		state, _ := c.QueryString(t.Context(), `SELECT coalesce((SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pitr'), '')`)
		return state == "sync", fmt.Sprintf("receiver is not a synchronous standby (state %q)\n%s", state, rc.output())
	})
	r.mustRun(backupEnv(c), "backup")
	start := time.Now()
	for i := 0; i < 20; i++ {
		insert(t, c, "sync", 5)
	}
	perCommit := time.Since(start) / 20
	rc.stop(syscall.SIGKILL)
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	dest := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dest)
	c2 := r.startRestored(dest)
	if got, want := phaseCounts(t, c2), "sync=100"; got != want {
		t.Fatalf("restored %q, want %q\n%s", got, want, rc.output())
	}
	t.Logf("synchronous commits took %s each", perCommit)
}
