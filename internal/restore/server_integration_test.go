//go:build integration

package restore

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// pitrFixture is a tar base backup (pg_basebackup -Ft -X none) and a WAL
// archive holding: row 1 before the backup, row 2 before T, row 3 after.
type pitrFixture struct {
	archive, baseTar string
	t                time.Time
}

func newPITRFixture(t *testing.T) pitrFixture {
	t.Helper()
	ctx := t.Context()
	arch := testenv.Dir(t)
	c := testenv.Postgres(t, map[string]string{"archive_mode": "on", "archive_command": "cp %p " + arch + "/%f"})
	if err := c.Exec(ctx, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	bk := filepath.Join(testenv.Dir(t), "backup")
	if _, err := c.RunAsOwner(ctx, "pg_basebackup", "-D", bk, "-Ft", "-X", "none", "-c", "fast"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	ts, err := c.QueryString(ctx, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
	if err != nil {
		t.Fatal(err)
	}
	target, err := parseTime(ts)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := c.Exec(ctx, "INSERT INTO t VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	seg, err := c.QueryString(ctx, "SELECT pg_walfile_name(pg_switch_wal())")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(arch, seg)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not archived", seg)
		}
	}
	return pitrFixture{archive: arch, baseTar: filepath.Join(bk, "base.tar"), t: target}
}

// restoreTo extracts the base backup into a new data directory and writes
// the recovery configuration for target.
func (f pitrFixture) restoreTo(t *testing.T, target Target, action string) string {
	t.Helper()
	dataDir := filepath.Join(testenv.Dir(t), "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := scratch.ChownToPostgres(dataDir); err != nil {
		t.Fatal(err)
	}
	var owner *Owner
	if uid, gid, ok := scratch.PostgresUser(); ok {
		owner = &Owner{UID: uid, GID: gid}
	}
	r, err := os.Open(f.baseTar)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, err := Extract(t.Context(), r, dataDir, ExtractOptions{Owner: owner, Name: "base.tar"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("extracted %d files, %d bytes", st.Files, st.Bytes)
	settings := append(target.Settings(),
		Setting{"restore_command", "cp " + f.archive + "/%f %p"},
		Setting{"archive_mode", "off"}, // keep the fixture's archive as it is
	)
	if action != "" {
		settings = append(settings, Setting{"recovery_target_action", action})
	}
	if err := WriteRecoveryConfig(dataDir, settings, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dataDir
}

// start runs Start on a free port and stops the server when the test ends.
func start(t *testing.T, dataDir string) (Reached, *scratch.Cluster, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	sock := testenv.Dir(t)
	c := scratch.Open(scratch.Options{Port: port, Dir: testenv.Dir(t)}, dataDir)
	t.Cleanup(func() { // t.Context() is done by now
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop restored server: %v", err)
		}
	})
	r, err := Start(t.Context(), StartOptions{DataDir: dataDir, Port: port, SocketDir: sock, Timeout: 2 * time.Minute})
	if err != nil {
		t.Logf("Start: %v", err)
	}
	return r, c, err
}

func TestStartRecovery(t *testing.T) {
	testenv.RequirePostgres(t)
	f := newPITRFixture(t)
	ctx := t.Context()

	for _, tc := range []struct {
		name   string
		target Target
		rows   int64
		reason string
	}{
		{"time", Target{Kind: Time, Time: f.t}, 2, "before "},
		{"immediate", Target{Kind: Immediate}, 1, "reached consistency"},
		{"latest", Target{}, 3, "no recovery target specified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := f.restoreTo(t, tc.target, "promote")
			began := time.Now()
			r, c, err := start(t, dataDir)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("recovered in %s: %+v", time.Since(began).Round(time.Millisecond), r)
			if r.Timeline != 2 || r.LSN == 0 || !strings.HasPrefix(r.Reason, tc.reason) {
				t.Errorf("Reached = %+v, want timeline 2 and reason %q", r, tc.reason)
			}
			if tc.target.Kind == Time && (r.Time.IsZero() || r.Time.After(f.t) || f.t.Sub(r.Time) > 10*time.Second) {
				t.Errorf("Reached.Time = %v, target %v", r.Time, f.t)
			}
			if log, err := os.ReadFile(r.Log); err != nil || !strings.Contains(string(log), "selected new timeline ID: 2") {
				t.Errorf("server log %s: %v", r.Log, err)
			}
			if n, err := c.QueryInt(ctx, "SELECT count(*) FROM t"); err != nil || n != tc.rows {
				t.Errorf("rows = %d, %v; want %d", n, err, tc.rows)
			}
			if n, err := c.QueryInt(ctx, "SELECT count(*) FROM t WHERE pg_is_in_recovery()"); err != nil || n != 0 {
				t.Errorf("still in recovery: %d, %v", n, err)
			}
		})
	}
}

func TestStartRecoveryFails(t *testing.T) {
	testenv.RequirePostgres(t)
	f := newPITRFixture(t)
	for _, tc := range []struct {
		name, action, want string
		target             Target
	}{
		{"after the archive", "promote", "FATAL:  recovery ended before configured recovery target was reached",
			Target{Kind: Time, Time: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"missing restore point", "promote", "FATAL:  recovery ended before configured recovery target was reached",
			Target{Kind: Name, Name: "never created"}},
		{"pause", "pause", "recovery paused at its target", Target{Kind: Immediate}},
		{"shutdown", "shutdown", "recovery reached its target and shut down", Target{Kind: Immediate}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := f.restoreTo(t, tc.target, tc.action)
			_, _, err := start(t, dataDir)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			first, rest, _ := strings.Cut(err.Error(), "; last lines of ")
			if !strings.Contains(first, tc.want) {
				t.Errorf("first line of the error = %q, want %q", first, tc.want)
			}
			if strings.HasPrefix(tc.want, "FATAL") && (rest == "" || strings.ContainsAny(err.Error(), "\n\t")) {
				t.Errorf("error without the end of the log: %q", rest)
			}
			if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); err == nil {
				t.Error("server still running after Start failed")
			}
		})
	}
}
