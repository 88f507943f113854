package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/status"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage/local"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// localRepo makes a repository (the marker only) in a new directory
// named name and returns its URL.
func localRepo(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Create(t.Context(), st, nil, "test"); err != nil {
		t.Fatal(err)
	}
	return "file://" + dir
}

// monCLI runs pitr in-process with no config file and PITR_* unset.
func monCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PITR_CONFIG", empty)
	t.Setenv("PITR_LOG_LEVEL", "error")
	code, stdout, stderr = runCLI(t, args...)
	return stdout, stderr, code
}

// A repository without a backup is CRITICAL "no backup" (exit 2), and
// check's failures are UNKNOWN (exit 3) with a status line on stdout.
func TestCheckExitCodes(t *testing.T) {
	url := localRepo(t, "db1")
	out, _, code := monCLI(t, "check", "--repo", url)
	if code != 2 || !strings.HasPrefix(out, "PITR CRITICAL - no backup | ") {
		t.Errorf("fresh repository: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{
		{"check"}, // no repository
		{"check", "--repo", url, "--warn-wal-age", "soon"},
		{"check", "--repo", url, "--warn-wal-age", "1h", "--max-wal-age", "1m"},
		{"check", "--repo", "file://" + t.TempDir()}, // not a repository
		{"check", "extra"},
	} {
		out, _, code := monCLI(t, args...)
		if code != 3 || !strings.HasPrefix(out, "PITR UNKNOWN - ") || strings.Count(out, "\n") > 2 {
			t.Errorf("pitr %v: exit %d, want 3 and one UNKNOWN line\n%s", args, code, out)
		}
	}
}

// A backup with its WAL is OK with verify and drill checks off, and the
// thresholds given as flags apply.
func TestCheckBackupAges(t *testing.T) {
	m := storagetest.NewMemory()
	e, out := memEnv(m)
	e.cfg.Repo = "file:///mem/db1"
	end := time.Now().Add(-2 * time.Hour).UTC()
	for i := uint64(1); i <= 2; i++ {
		key, _ := catalog.WALKey(wal.SegmentFileName(1, i, seg), strings.Repeat("a", 64), true)
		put(t, m, key, "x")
	}
	b := &catalog.Backup{ID: catalog.BackupID(end), Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg, Encrypted: true,
		StartWAL: wal.SegmentFileName(1, 1, seg), EndWAL: wal.SegmentFileName(1, 2, seg), StartTime: end.Add(-time.Minute), EndTime: end}
	for _, name := range []string{"base.tar", "backup_manifest"} {
		key, _ := catalog.BackupPartKey(b.ID, name, true)
		b.Parts = append(b.Parts, catalog.Part{Name: name, Key: key, SHA256: strings.Repeat("0", 64), Stored: 4})
		put(t, m, key, "part")
	}
	put(t, m, catalog.BackupEntryKey(b.ID), string(catalog.MarshalBackup(b)))
	off := map[string]time.Duration{"warn_verify_age": 0, "max_verify_age": 0, "warn_drill_age": 0, "max_drill_age": 0}
	if err := runCheck(t.Context(), e, nil, off); err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out.String(), "PITR OK - last backup 2h ago, WAL 0s behind | backup_age=72") {
		t.Errorf("output %s", out)
	}
	for _, tt := range []struct {
		warn, max time.Duration
		code      int
	}{{time.Hour, 0, 1}, {time.Second, time.Hour, 2}} {
		out.Reset()
		set := map[string]time.Duration{"warn_backup_age": tt.warn, "max_backup_age": tt.max}
		for k, v := range off {
			set[k] = v
		}
		err := runCheck(t.Context(), e, nil, set)
		var ec exitCodeError
		if !errors.As(err, &ec) || ec.code != tt.code || ec.err != nil {
			t.Errorf("warn %s max %s: %v, want exit %d\n%s", tt.warn, tt.max, err, tt.code, out)
		}
	}
}

// Two repositories: status --json lists both, labelled by their
// prefix's last element; check labels perfdata and problems.
func TestStatusSeveralRepositories(t *testing.T) {
	a, b := localRepo(t, "db1"), localRepo(t, "db2")
	out, stderr, code := monCLI(t, "status", "--json", "--repo", a, "--repo", b)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var all []status.Status
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(all) != 2 || all[0].Name != "db1" || all[1].Name != "db2" || all[0].Repo != a {
		t.Fatalf("statuses %+v", all)
	}
	out, _, code = monCLI(t, "check", "--repo", a, "--repo", b)
	if code != 2 || !strings.HasPrefix(out, "PITR CRITICAL - 2 clusters: 0 ok, 0 warning, 2 critical, 0 unknown; db1: no backup; db2: no backup | db1.wal_gaps=0 db2.wal_gaps=0\n") ||
		!strings.Contains(out, "\nCRITICAL db2: no backup\n") {
		t.Errorf("check: exit %d\n%s", code, out)
	}
	out, _, code = monCLI(t, "status", "--repo", a, "--repo", b)
	if code != 0 || !strings.Contains(out, "cluster db1: "+a) || !strings.Contains(out, "cluster db2: "+b) {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	t.Logf("status:\n%s", out)
}

// A daemon with only monitor: (no repo) serves the monitored
// repositories' metrics, labelled by cluster, and nothing else.
func TestDaemonMonitorOnly(t *testing.T) {
	a, b := localRepo(t, "db1"), localRepo(t, "db2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(t.TempDir(), "pitr.yaml")
	yml := fmt.Sprintf("metrics_addr: %s\nmonitor:\n  - repo: %s\n  - name: billing\n    repo: %s\n", addr, a, b)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PITR_REPO", "")
	os.Unsetenv("PITR_REPO")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"daemon", "--config", cfg, "--log-level", "error"}, strings.NewReader(""), io.Discard, &stderr)
	}()
	var body string
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		bs, _ := io.ReadAll(resp.Body)
		body = string(bs)
		return strings.Contains(body, `pitr_monitor_up{cluster="billing"} 1`) && strings.Contains(body, `pitr_monitor_up{cluster="db1"} 1`),
			"monitored repositories not up in /metrics"
	})
	if !strings.Contains(body, `pitr_backups{cluster="db1"} 0`) || strings.Contains(body, "pitr_stream_connected") {
		t.Errorf("metrics:\n%s", body)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("daemon exit %d: %s", code, stderr.String())
	}
}

// With offsite:, status and check compare the off-site repository.
func TestStatusOffsite(t *testing.T) {
	a, b := localRepo(t, "db1"), localRepo(t, "copy")
	st, err := local.Open(strings.TrimPrefix(a, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := catalog.WALKey(wal.SegmentFileName(1, 1, seg), strings.Repeat("a", 64), true)
	if err := st.Put(t.Context(), key, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "pitr.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("repo: %s\nencryption: none\noffsite:\n  repo: %s\n", a, b)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PITR_LOG_LEVEL", "error")
	code, out, stderr := runCLI(t, "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "off-site "+b+": ") || !strings.Contains(out, "WAL from "+wal.SegmentFileName(1, 1, seg)) {
		t.Errorf("status: exit %d %s\n%s", code, stderr, out)
	}
	code, out, _ = runCLI(t, "check", "--config", cfg)
	if code != 2 || !strings.Contains(out, " copy_lag=") {
		t.Errorf("check: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("repo: %s\nencryption: none\noffsite:\n  repo: %s\n", a, "file:///nonexistent/x")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "check", "--config", cfg)
	if code != 2 || !strings.Contains(out, "\nCRITICAL: off-site repository file:///nonexistent/x unreadable: ") {
		t.Errorf("check, off-site missing: exit %d\n%s", code, out)
	}
}

// An exit status without an error (pitr check printed its result) exits
// with that status and prints nothing more.
func TestPrintErrorSilentExit(t *testing.T) {
	var w bytes.Buffer
	if code := printError(&w, nil, fmt.Errorf("wrapped: %w", exitCodeError{code: 1})); code != 1 || w.Len() != 0 {
		t.Errorf("printError = %d, printed %q", code, w.String())
	}
	if s := (exitCodeError{code: 2}).Error(); s != "exit status 2" {
		t.Errorf("Error() = %q", s)
	}
}
