//go:build integration

package main

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/testenv"
)

// smallDisk mounts a tmpfs of the given size; it needs root, as CI has.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := testenv.Dir(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0777", "tmpfs", dir).CombinedOutput(); err != nil {
		if testenv.Require() {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a small filesystem: %v", err)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestFullDisk: a full repository disk fails wal-push and leaves no object;
// a full pg_wal fails wal-fetch with a fatal status (never "not archived")
// and leaves no partial file; a full target disk fails restore and leaves
// no half-restored directory.
func TestFullDisk(t *testing.T) {
	r := newRig(t, "local")
	pgwal := filepath.Join(testenv.Dir(t), "pg_wal")
	if err := os.MkdirAll(filepath.Join(pgwal, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(pgwal, "000000010000000000000001")
	random := make([]byte, 16<<20) // incompressible: stored at full size
	rand.Read(random)
	if err := os.WriteFile(seg, random, 0o600); err != nil {
		t.Fatal(err)
	}

	// The repository on a 4 MiB disk.
	small := smallDisk(t, "4m")
	env := []string{"PITR_REPO=file://" + small + "/repo"}
	_, stderr, code := r.runEnv(env, "wal-push", seg)
	if code != 1 || !strings.Contains(stderr, "no space left on device") {
		t.Fatalf("push to a full disk: exit %d: %s", code, stderr)
	}
	left, _ := filepath.Glob(filepath.Join(small, "repo", "wal", "*", "*"))
	if len(left) != 0 {
		t.Fatalf("objects after a failed push: %v", left)
	}
	if tmp, _ := os.ReadDir(filepath.Join(pgwal, "pitr", "tmp")); len(tmp) != 0 {
		t.Fatalf("spool temp files left: %v", tmp)
	}

	// pg_wal on a full disk during recovery.
	if _, stderr, code := r.run("wal-push", seg); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	fullWAL := smallDisk(t, "4m")
	_, stderr, code = r.runEnv([]string{"PITR_FETCH_PREFETCH=0"}, "wal-fetch", "000000010000000000000001", filepath.Join(fullWAL, "RECOVERYXLOG"))
	if code <= 125 || !strings.Contains(stderr, "no space left on device") {
		t.Fatalf("fetch onto a full disk: exit %d, want >125: %s", code, stderr)
	}
	if entries, _ := os.ReadDir(fullWAL); len(entries) != 0 {
		t.Fatalf("partial files after a failed fetch: %v", entries)
	}
}

// TestRestoreFullDisk: a restore that runs out of space leaves nothing.
func TestRestoreFullDisk(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	r.mustRun(backupEnv(c), "backup")
	small := smallDisk(t, "8m")
	dest := filepath.Join(small, "pgdata")
	_, stderr, code := r.run("restore", "--to", "latest", "--pgdata", dest)
	if code == 0 || !strings.Contains(stderr, "no space left on device") {
		t.Fatalf("restore onto a full disk: exit %d: %s", code, stderr)
	}
	if entries, _ := os.ReadDir(small); len(entries) != 0 {
		t.Fatalf("left behind after a failed restore: %v", entries)
	}
}
