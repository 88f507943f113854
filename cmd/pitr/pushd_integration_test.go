//go:build integration

package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// Issue 13, the wal-push socket: pitr daemon pushes WAL for wal-push.

// socketDaemon starts a daemon that only serves the wal-push socket (no
// streaming, nothing scheduled) and waits for its socket; it returns the
// daemon and its metrics URL.
func (r *rig) socketDaemon(t *testing.T, asPostgres bool, env ...string) (*daemonProc, string) {
	t.Helper()
	port, err := scratch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env = append([]string{"PITR_DAEMON_STREAM=false", "PITR_BACKUP_SCHEDULE=", "PITR_DUMP_SCHEDULE=", "PITR_FILES_SCHEDULE=",
		"PITR_LOG_LEVEL=debug", fmt.Sprintf("PITR_METRICS_ADDR=127.0.0.1:%d", port)}, env...)
	var d *daemonProc
	if asPostgres { // as archive_command runs: the socket is mode 0600
		uid, gid, ok := scratch.PostgresUser()
		if !ok {
			t.Skip("not root: no postgres user to run the daemon as")
		}
		if err := os.Chown(filepath.Dir(r.socket), uid, gid); err != nil {
			t.Fatal(err)
		}
		d = &daemonProc{cmd: exec.Command(r.pitr, "daemon"), log: &lockedBuffer{}, exited: make(chan struct{})}
		d.cmd.Env = append(append(os.Environ(), r.env...), env...)
		d.cmd.Stderr = d.log
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		d.cmd.Dir = "/"
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = d.cmd.Wait(); close(d.exited) }()
		t.Cleanup(func() {
			_ = d.cmd.Process.Kill()
			<-d.exited
			if t.Failed() {
				t.Logf("daemon log:\n%s", d.log.String())
			}
		})
	} else {
		d = r.startDaemon(t, env...)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		select {
		case <-d.exited:
			t.Fatalf("daemon exited:\n%s", d.log.String())
		default:
		}
		return strings.Contains(d.log.String(), "serving wal-push on unix socket"), "daemon not serving the socket"
	})
	return d, fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
}

// fakeWAL makes a pg_wal directory holding one .ready segment of size
// random bytes.
func fakeWAL(t *testing.T, name string, size int) (path string, content []byte) {
	t.Helper()
	pgwal := filepath.Join(testenv.Dir(t), "pg_wal")
	if err := os.MkdirAll(filepath.Join(pgwal, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	content = make([]byte, size)
	rand.Read(content)
	path = filepath.Join(pgwal, name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pgwal, "archive_status", name+".ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, content
}

// fetchEqual fetches name and compares it with want.
func (r *rig) fetchEqual(t *testing.T, name string, want []byte) {
	t.Helper()
	dest := filepath.Join(testenv.Dir(t), "RECOVERYXLOG")
	if _, stderr, code := r.runEnv([]string{"PITR_FETCH_PREFETCH=0"}, "wal-fetch", name, dest); code != 0 {
		t.Fatalf("wal-fetch %s: exit %d: %s", name, code, stderr)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
		t.Fatalf("%s: fetched copy differs", name)
	}
}

// TestWALPushViaDaemon: a push through the daemon stores the segment and
// exits 0; a daemon serving another repository refuses, and wal-push
// pushes in-process.
func TestWALPushViaDaemon(t *testing.T) {
	r := newRig(t, "minio")
	d, metrics := r.socketDaemon(t, false)
	const name = "000000010000000000000011"
	path, content := fakeWAL(t, name, 1<<20)
	_, stderr, code := r.run("wal-push", path)
	if code != 0 || !strings.Contains(stderr, `"via":"daemon"`) {
		t.Fatalf("wal-push: exit %d, want 0 through the daemon: %s", code, stderr)
	}
	r.fetchEqual(t, name, content)
	_, body, _ := tryGet(metrics)
	if metricValue(body, `pitr_wal_push_socket_requests_total{result="ok"}`) != 1 {
		t.Fatalf("metrics:\n%s", grepLines(body, "pitr_wal_push_socket"))
	}
	if !strings.Contains(d.log.String(), `"peer_uid":0`) {
		t.Errorf("daemon log does not name the peer's uid:\n%s", d.log.String())
	}

	// Another repository (prefix db2): refused, pushed in-process.
	other := newRig(t, "minio")
	other.env = append(other.env, "PITR_SOCKET="+r.socket) // r's daemon
	const name2 = "000000010000000000000012"
	path2, content2 := fakeWAL(t, name2, 1<<20)
	_, stderr, code = other.run("wal-push", path2)
	if code != 0 || strings.Contains(stderr, `"via":"daemon"`) {
		t.Fatalf("wal-push to another repository: exit %d, want 0 in-process: %s", code, stderr)
	}
	other.fetchEqual(t, name2, content2)
	_, body, _ = tryGet(metrics)
	if metricValue(body, `pitr_wal_push_socket_requests_total{result="refused"}`) != 1 {
		t.Fatalf("metrics:\n%s", grepLines(body, "pitr_wal_push_socket"))
	}
}

// TestWALPushDaemonKilled: the daemon is killed (SIGKILL) mid-push; the
// call falls back to pushing in-process and exits 0 only with the object
// stored.
func TestWALPushDaemonKilled(t *testing.T) {
	r := newRig(t, "minio")
	// The daemon uploads slowly, so the kill lands mid-push.
	d, _ := r.socketDaemon(t, false, "PITR_LIMIT_UPLOAD=64KiB")
	const name = "000000010000000000000021"
	path, content := fakeWAL(t, name, 4<<20)
	cmd := exec.Command(r.pitr, "wal-push", path)
	cmd.Env = append(append(os.Environ(), r.env...), "PITR_RETRY_TIMEOUT=2m")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf(".%d-", d.cmd.Process.Pid)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "pitr", "tmp", name+tag+"*"))
		return len(tmps) > 0, "the daemon never started pushing"
	})
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("wal-push after the daemon died: %v: %s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), `"via":"daemon"`) {
		t.Fatalf("wal-push reports the dead daemon's push: %s", stderr.String())
	}
	r.fetchEqual(t, name, content)
}

// TestWALPushDaemonStoreDown: the store down behind the daemon: wal-push
// fails (the daemon's error, not retried in-process) within retry_timeout.
func TestWALPushDaemonStoreDown(t *testing.T) {
	r := newRig(t, "minio")
	r.socketDaemon(t, false)
	path, _ := fakeWAL(t, "000000010000000000000031", 1<<20)
	r.minio.Stop(t)
	t.Cleanup(func() { r.minio.Start(t) })
	start := time.Now()
	_, stderr, code := r.runEnv([]string{"PITR_RETRY_TIMEOUT=3s"}, "wal-push", path)
	took := time.Since(start)
	if code == 0 || !strings.Contains(stderr, "daemon") {
		t.Fatalf("wal-push with the store down: exit %d, want a failure from the daemon: %s", code, stderr)
	}
	if took > 8*time.Second {
		t.Fatalf("wal-push took %s with retry_timeout 3s", took)
	}
	t.Logf("store down: exit %d after %s: %s", code, took.Round(time.Millisecond), lastLine(stderr))
}

// TestArchiveThroughDaemon: a real cluster with archive_command =
// 'pitr wal-push %p' and the daemon running as the server's user archives
// through the socket.
func TestArchiveThroughDaemon(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	_, metrics := r.socketDaemon(t, true)
	psql(t, c, "postgres", `CREATE TABLE t AS SELECT generate_series(1, 10000) i`)
	var last string
	for range 3 {
		last = switchAndWait(t, c, time.Minute)
		psql(t, c, "postgres", `INSERT INTO t SELECT generate_series(1, 1000)`)
	}
	_, body, _ := tryGet(metrics)
	if metricValue(body, `pitr_wal_push_socket_requests_total{result="ok"}`) < 3 ||
		metricValue(body, `pitr_wal_push_socket_requests_total{result="failed"}`) != 0 {
		t.Fatalf("archived up to %s, metrics:\n%s", last, grepLines(body, "pitr_wal_push_socket"))
	}
	orig, err := os.ReadFile(filepath.Join(c.DataDir, "pg_wal", last))
	if err != nil {
		t.Fatal(err)
	}
	r.fetchEqual(t, last, orig)
}

// TestArchiveThroughResidentPusher: without a daemon, the first
// archive_command call pushes in-process and starts a resident pusher in
// pg_wal/pitr; the later calls go through it, everything fetches back
// byte-identical, and the pusher ends with the server.
func TestArchiveThroughResidentPusher(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	psql(t, c, "postgres", `CREATE TABLE t AS SELECT generate_series(1, 10000) i`)
	var names []string
	for range 4 {
		names = append(names, switchAndWait(t, c, time.Minute))
		psql(t, c, "postgres", `INSERT INTO t SELECT generate_series(1, 1000)`)
	}
	spool := filepath.Join(c.DataDir, "pg_wal", "pitr")
	pusher := func() string { // its pid, or ""
		out, _ := exec.Command("pgrep", "-f", "wal-push-serve "+spool).Output()
		return strings.TrimSpace(string(out))
	}
	if pusher() == "" {
		t.Fatal("no resident pusher runs for the data directory")
	}
	logb, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
	if n := strings.Count(string(logb), `"via":"resident pusher"`); n < 2 {
		t.Fatalf("%d calls went through the resident pusher, want at least 2; server log:\n%s", n, logb)
	}
	for _, name := range names {
		orig, err := os.ReadFile(filepath.Join(c.DataDir, "pg_wal", name))
		if err != nil {
			continue // recycled
		}
		r.fetchEqual(t, name, orig)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return pusher() == "", "the resident pusher outlived the server"
	})
}
