//go:build integration

package scratch_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

func TestClusterKillRestart(t *testing.T) {
	ctx := t.Context()
	start := time.Now()
	c := testenv.Postgres(t, map[string]string{"cluster_name": `it's a \ test`})
	t.Logf("init and start: %s", time.Since(start).Round(time.Millisecond))

	if got, err := c.QueryString(ctx, "SHOW cluster_name"); err != nil || got != `it's a \ test` {
		t.Errorf("cluster_name = %q, %v", got, err)
	}
	if got, err := c.QueryString(ctx, "SHOW data_checksums"); err != nil || got != "on" {
		t.Errorf("data_checksums = %q, %v", got, err)
	}
	if err := c.Exec(ctx, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)"); err != nil {
		t.Fatal(err)
	}

	// An open session has a backend; Kill must take it down too.
	conn, err := c.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}

	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(backend, 0); err == nil && !zombie(backend) {
		t.Errorf("backend %d survived Kill", backend)
	}
	if _, err := c.QueryInt(ctx, "SELECT 1"); err == nil {
		t.Fatal("query after Kill succeeded")
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "postmaster.pid")); err != nil {
		t.Errorf("Kill should leave postmaster.pid as a crash does: %v", err)
	}
	start = time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("start after kill (crash recovery): %s", time.Since(start).Round(time.Millisecond))
	if n, err := c.QueryInt(ctx, "SELECT count(*) FROM t"); err != nil || n != 100 {
		t.Errorf("rows after crash = %d, %v; want 100", n, err)
	}
	log, err := os.ReadFile(c.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "was not properly shut down") {
		t.Errorf("server log shows no crash recovery")
	}

	out, err := c.RunAsOwner(ctx, "psql", "-Atc", "SELECT current_user")
	if err != nil || strings.TrimSpace(string(out)) != "postgres" {
		t.Errorf("psql: %q, %v", out, err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	out, err = c.RunAsOwner(ctx, "pg_controldata", c.DataDir)
	if err != nil || !strings.Contains(string(out), "shut down") {
		t.Errorf("pg_controldata after Stop: %s, %v", out, err)
	}
}

// TestOpen starts a second Cluster on a copy of the first one's data
// directory, as a restore test does.
func TestOpen(t *testing.T) {
	ctx := t.Context()
	c := testenv.Postgres(t, nil)
	if err := c.Exec(ctx, "CREATE TABLE t AS SELECT 42 AS v"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(testenv.Dir(t), "pgdata")
	if out, err := exec.Command("cp", "-a", c.DataDir, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if err := scratch.ChownToPostgres(copyDir); err != nil {
		t.Fatal(err)
	}

	o := scratch.Open(scratch.Options{Dir: testenv.Dir(t), Settings: map[string]string{"application_name": "opened"}}, copyDir)
	t.Cleanup(func() {
		if t.Failed() {
			testenv.DumpLog(t, o)
		}
		_ = o.Remove()
	})
	if o.Port == c.Port || o.SocketDir == c.SocketDir {
		t.Errorf("Open reused port %d or socket dir %s", o.Port, o.SocketDir)
	}
	if err := o.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := o.QueryInt(ctx, "SELECT v FROM t"); err != nil || v != 42 {
		t.Errorf("v = %d, %v", v, err)
	}
	if got, err := o.QueryString(ctx, "SELECT reset_val FROM pg_settings WHERE name = 'application_name'"); err != nil || got != "opened" {
		t.Errorf("application_name = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(o.SocketDir, ".s.PGSQL."+strconv.Itoa(o.Port))); err != nil {
		t.Errorf("socket: %v", err)
	}
}

func TestOpenMissing(t *testing.T) {
	testenv.RequirePostgres(t)
	o := scratch.Open(scratch.Options{Dir: testenv.Dir(t)}, filepath.Join(testenv.Dir(t), "nothing"))
	defer func() {
		if err := o.Remove(); err != nil {
			t.Error(err)
		}
	}()
	err := o.Start(t.Context())
	if err == nil {
		t.Fatal("Start on a missing data dir succeeded")
	}
	if !strings.Contains(err.Error(), "server log") {
		t.Errorf("error lacks the server log: %v", err)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// lockedBuffer is a bytes.Buffer safe for the server output copier.
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

func TestLogWriter(t *testing.T) {
	testenv.RequirePostgres(t)
	var log lockedBuffer
	c, err := scratch.Init(t.Context(), scratch.Options{Dir: testenv.Dir(t), Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Remove(); err != nil {
			t.Error(err)
		}
	}()
	if !strings.Contains(log.String(), "Data page checksums are enabled") {
		t.Errorf("Log lacks initdb output:\n%s", log.String())
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"database system is ready to accept connections", "was not properly shut down", "database system is shut down"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("Log lacks %q", want)
		}
	}
}
