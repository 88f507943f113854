//go:build integration

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRetainDuringFilesSnapshot: retain --files --keep-last 1 runs again and
// again (with the pack GC) while a file snapshot runs; both succeed, and
// the new snapshot and the one it keeps read back whole.
func TestRetainDuringFilesSnapshot(t *testing.T) {
	dir, keys := t.TempDir(), t.TempDir()
	filesMinIO(t, dir, keys)
	for i := range 8 {
		writeTreeFile(t, filepath.Join(dir, "media", string(rune('a'+i))+".bin"), randomData(uint64(i), 2<<20), 0o644)
	}
	for _, round := range []int{1, 2} {
		writeTreeFile(t, filepath.Join(dir, "media", "round.bin"), randomData(uint64(1000+round), 3<<20), 0o644)
		if code, _, stderr := runCLI(t, "files", "backup", "media"); code != exitOK {
			t.Fatalf("files backup %d: exit %d: %s", round, code, stderr)
		}
	}
	// The third snapshot has new content, to keep it busy for a while.
	for i := range 12 {
		writeTreeFile(t, filepath.Join(dir, "more", string(rune('a'+i))+".bin"), randomData(uint64(500+i), 3<<20), 0o644)
	}
	done := make(chan string, 1)
	go func() {
		code, _, stderr := runCLIContext(t.Context(), "files", "backup", "media")
		if code != exitOK {
			done <- stderr
			return
		}
		done <- ""
	}()
	runs := 0
	var failed string
loop:
	for {
		select {
		case failed = <-done:
			break loop
		default:
		}
		if code, stdout, stderr := runCLI(t, "retain", "--files", "--keep-last", "1", "--grace", "1m"); code != exitOK {
			t.Fatalf("retain during a snapshot: exit %d\n%s%s", code, stdout, stderr)
		}
		runs++
	}
	if failed != "" {
		t.Fatalf("files backup during retain: %s", failed)
	}
	t.Logf("retain ran %d times during the snapshot", runs)
	code, stdout, stderr := runCLI(t, "retain", "--files", "--keep-last", "1", "--grace", "1m")
	if code != exitOK || !strings.Contains(stdout, "files: keep 1, delete ") || !strings.Contains(stdout, "file packs: ") || strings.Contains(stdout, "window:") {
		t.Fatalf("retain after the snapshot: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("retain:\n%s", stdout)
	r := filesRepo(t)
	snaps := snapshots(t, r, "media")
	if len(snaps) != 1 {
		t.Fatalf("%d snapshots of media left, want 1", len(snaps))
	}
	verifyAgainstTree(t, r, snaps[0])
}
