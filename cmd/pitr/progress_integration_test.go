//go:build integration

package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBackupRestoreOnTerminal: pitr backup and restore with stderr on a
// terminal draw a bar (label, share done, bytes) and still succeed, here
// through the bandwidth limits too; the same commands on a pipe draw none
// (the other integration tests run them that way).
func TestBackupRestoreOnTerminal(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if _, err := c.RunAsOwner(t.Context(), "pgbench", "-i", "-s", "1", "-q"); err != nil {
		t.Fatal(err)
	}
	limits := []string{"PITR_LIMIT_UPLOAD=200MiB", "PITR_LIMIT_DOWNLOAD=200MiB", "PITR_LOG_FORMAT=auto"}
	out, term := r.onTerminal(append(backupEnv(c), limits...), "backup")
	if !strings.HasPrefix(out, "backup ") || !strings.Contains(out, " complete: ") {
		t.Fatalf("backup on a terminal: stdout %q, terminal %q", out, term)
	}
	if !strings.Contains(term, "backup") || !strings.Contains(term, "%") || !strings.Contains(term, "MiB") {
		t.Errorf("backup drew no bar with its share done and bytes: %q", term)
	}
	out, term = r.onTerminal(limits, "restore", "--to", "latest", "--pgdata", restoredDir(t))
	if !strings.Contains(out, "restored backup ") {
		t.Fatalf("restore on a terminal: stdout %q, terminal %q", out, term)
	}
	if !strings.Contains(term, "restore") || !strings.Contains(term, "%") || !strings.Contains(term, "MiB") {
		t.Errorf("restore drew no bar with its share done and bytes: %q", term)
	}
}

// onTerminal runs pitr with stderr on a pseudo-terminal; it returns
// stdout and what the terminal showed.
func (r *rig) onTerminal(extra []string, args ...string) (stdout, terminal string) {
	r.t.Helper()
	master, slave := openPTYPair(r.t)
	cmd := exec.CommandContext(r.t.Context(), r.pitr, args...)
	cmd.Env = append(append(append(os.Environ(), r.env...), "PITR_AGE_IDENTITY_FILE="+r.identity), extra...)
	var o bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, slave
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	slave.Close() // the child holds it; reads of master end when the child exits
	shown := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for {
			_ = master.SetReadDeadline(time.Now().Add(2 * time.Minute))
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil { // EIO once the last holder of the terminal closed it
				if !errors.Is(err, syscall.EIO) && !errors.Is(err, io.EOF) {
					b.WriteString("\n(read: " + err.Error() + ")")
				}
				shown <- b.String()
				return
			}
		}
	}()
	err := cmd.Wait()
	term := <-shown
	if err != nil {
		r.t.Fatalf("pitr %v: %v; terminal %q", args, err, term)
	}
	return o.String(), term
}
