package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage/local"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestCopyTarget(t *testing.T) {
	cfg := config.Default()
	cfg.Repo, cfg.S3Endpoint = "s3://main/db", "http://primary:9000"
	if _, _, err := copyTarget(&cfg, ""); !errors.Is(err, errUsage) {
		t.Errorf("no --to, no offsite: %v", err)
	}
	if _, _, err := copyTarget(&cfg, "s3://main/db/"); !errors.Is(err, errUsage) {
		t.Errorf("--to the primary: %v", err)
	}
	if _, _, err := copyTarget(&cfg, "ftp://backup"); !errors.Is(err, errUsage) {
		t.Errorf("--to ftp://: %v", err)
	}
	r, offsite, err := copyTarget(&cfg, "file:///backup")
	if err != nil || offsite || r.Repo != "file:///backup" || r.S3Endpoint != "http://primary:9000" {
		t.Errorf("--to another URL: %+v %v %v, want the primary's settings", r, offsite, err)
	}
	cfg.Offsite = &config.Repository{Repo: "s3://far/db", S3Endpoint: "http://far:9000"}
	for _, to := range []string{"", "s3://far/db", "s3://far/db/"} {
		r, offsite, err := copyTarget(&cfg, to)
		if err != nil || !offsite || r.S3Endpoint != "http://far:9000" {
			t.Errorf("--to %q with offsite: %+v %v %v, want the offsite section", to, r, offsite, err)
		}
	}
}

func TestRunCopyToLocal(t *testing.T) {
	m := storagetest.NewMemory()
	e, out := memEnv(m)
	e.cfg = config.Default()
	e.cfg.Repo, e.cfg.Encryption = "file:///primary-unused", "none"
	k, _ := catalog.WALKey("000000010000000000000001", strings.Repeat("a", 64), true)
	put(t, m, k, "segment")
	dir := filepath.Join(t.TempDir(), "offsite")
	to := "file://" + dir

	if err := runCopy(t.Context(), e, copyOptions{to: to, dryRun: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), to+" is 2 objects (") || !strings.Contains(out.String(), "wal   ") {
		t.Errorf("dry run printed:\n%s", out)
	}
	out.Reset()
	if err := runCopy(t.Context(), e, copyOptions{to: to}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "copied 2 objects (") {
		t.Errorf("copy printed %q", out)
	}
	st, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(t.Context(), k); err != nil {
		t.Errorf("segment not in the copy: %v", err)
	}
	out.Reset()
	if err := runCopy(t.Context(), e, copyOptions{to: to, verify: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "copied 0 objects (0 B) to "+to+", skipped 2") {
		t.Errorf("second copy printed %q", out)
	}
}

// With an offsite: section the daemon copies at start (and after each
// successful job), in a job of its own.
func TestDaemonCopiesOffsite(t *testing.T) {
	m := storagetest.NewMemory()
	e, _ := memEnv(m)
	e.cfg = config.Default()
	off := false
	dir := filepath.Join(t.TempDir(), "offsite")
	e.cfg.Repo, e.cfg.Encryption, e.cfg.DaemonStream = "file:///primary-unused", "none", &off
	e.cfg.BackupSchedule, e.cfg.DumpSchedule, e.cfg.MetricsAddr = "", "", ""
	e.cfg.Offsite = &config.Repository{Repo: "file://" + dir}
	k, _ := catalog.WALKey("000000010000000000000001", strings.Repeat("a", 64), true)
	put(t, m, k, "segment")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, e) }()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		st, err := local.Open(dir)
		if err != nil {
			return false, err.Error()
		}
		_, err = st.Stat(t.Context(), k)
		return err == nil, fmt.Sprintf("segment not copied off-site (%v)", err)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
