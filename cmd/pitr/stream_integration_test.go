//go:build integration

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
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
	rc.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { rc.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		rc.cmd.Process.Kill()
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
	deadline := time.Now().Add(timeout)
	for slotRestart(t, c) < want {
		if time.Now().After(deadline) {
			t.Fatalf("slot at %d after %s, want %d\n%s", slotRestart(t, c), timeout, want, rc.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func streamCluster(r *rig) *scratch.Cluster {
	c := r.cluster(map[string]string{"archive_mode": "off", "wal_keep_size": "0"})
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
			c := streamCluster(r)
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

var _ = fmt.Sprintf
