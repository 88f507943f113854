//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// useNoDeleteUser switches the rig (and so the clusters it makes from now
// on: archive_command runs with r.env) to a MinIO user whose policy denies
// s3:DeleteObject, as on the database host of docs/STORAGE.md.
func (r *rig) useNoDeleteUser() testenv.MinIOUser {
	r.t.Helper()
	u := r.minio.NoDeleteUser(r.t, r.bucket)
	env := r.env[:0:0]
	for _, kv := range r.env {
		if !strings.HasPrefix(kv, "AWS_ACCESS_KEY_ID=") && !strings.HasPrefix(kv, "AWS_SECRET_ACCESS_KEY=") {
			env = append(env, kv)
		}
	}
	r.env = append(env, u.Env()...)
	return u
}

// hasCommand says whether the pitr binary knows a command (retain comes
// with the retention work of issue 11).
func (r *rig) hasCommand(name string) bool {
	out, _, _ := r.run("--help")
	return strings.Contains(out, "\n  "+name+" ")
}

// TestDenyDelete: with credentials that cannot delete, everything that
// runs on the database host succeeds: wal-push (archive_command), backup,
// wal-receive (its chunk cleanup refused: logged once, it keeps going),
// dump and files backup; restore to latest has every row, the dump and
// the snapshot read back. Only pitr retain needs to delete, and it says so
// in one line.
func TestDenyDelete(t *testing.T) {
	r := newRig(t, "minio")
	r.useNoDeleteUser()
	c := streamCluster(r, map[string]string{"archive_mode": "on", "wal_keep_size": "1GB"})
	rc := r.startReceiver(c, "PITR_STREAM_SHIP_INTERVAL=50ms")
	insert(t, c, "a-before-backup", 100)
	t.Logf("backup: %s", strings.TrimSpace(r.mustRun(backupEnv(c), "backup")))
	insert(t, c, "b-after-backup", 50)
	waitStreamed(t, c, rc, time.Minute) // chunks of the unfinished segment are stored
	switchAndWait(t, c, time.Minute)    // wal-push stores it whole; so does wal-receive, then cleans its chunks
	insert(t, c, "c-streamed", 20)
	waitStreamed(t, c, rc, time.Minute)
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		return strings.Contains(rc.output(), "storage refuses to delete streamed chunks"), "wal-receive did not try to clean chunks yet:\n" + rc.output()
	})
	if failed, _ := c.QueryInt(t.Context(), `SELECT failed_count FROM pg_stat_archiver`); failed != 0 {
		t.Errorf("archive_command failed %d times", failed)
	}

	want := appDB(t, c)
	env := backupEnv(c)
	r.mustRun(env, "dump", "--db", "app")
	files := t.TempDir()
	writeTreeFile(t, filepath.Join(files, "a.txt"), []byte("uploaded"), 0o644)
	writeTreeFile(t, filepath.Join(files, "sub", "b.bin"), randomData(7, 1<<20), 0o600)
	filesEnv := []string{"PITR_FILES_DEDUP_KEY=" + filepath.Join(t.TempDir(), "dedup.key"), "XDG_CACHE_HOME=" + t.TempDir()}
	t.Logf("files backup: %s", strings.TrimSpace(r.mustRun(filesEnv, "files", "backup", "--set", "media", files)))

	if got := strings.Count(rc.output(), "storage refuses to delete streamed chunks"); got != 1 {
		t.Errorf("wal-receive logged the refused delete %d times, want once", got)
	}
	if rc.cmd.ProcessState != nil {
		t.Fatalf("wal-receive exited:\n%s", rc.output())
	}
	insert(t, c, "d-last", 5)
	waitStreamed(t, c, rc, time.Minute)
	wantRows := phaseCounts(t, c)

	// What they stored reads back with the same credentials.
	dir := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir)
	restored := r.startRestored(dir)
	if got := phaseCounts(t, restored); got != wantRows {
		t.Errorf("restore to latest: rows %q, want %q", got, wantRows)
	}
	r.mustRun(env, "restore-dump", "--db", "app", "--target-db", "app_copy", "--create")
	if got := itemSum(t, c, "app_copy"); got != want {
		t.Errorf("restored dump rows %q, want %q", got, want)
	}
	var listed struct{ Snapshots []*catalog.Snapshot }
	if err := json.Unmarshal([]byte(r.mustRun(filesEnv, "files", "list", "--json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Snapshots) != 1 || listed.Snapshots[0].Files != 2 {
		t.Fatalf("files list: %+v", listed.Snapshots)
	}
	target := filepath.Join(t.TempDir(), "restored")
	r.mustRun(filesEnv, "files", "restore", "--set", "media", "--target", target)
	got, err := os.ReadFile(filepath.Join(target, files, "sub", "b.bin"))
	if err != nil || !bytes.Equal(got, randomData(7, 1<<20)) {
		t.Errorf("restored file: %d bytes, %v", len(got), err)
	}

	if !r.hasCommand("retain") {
		t.Log("pitr retain is not in this build: its refusal is not checked")
		return
	}
	r.mustRun(backupEnv(c), "backup") // a second one, so --keep-last 1 has a backup to delete
	_, stderr, code := r.run("retain", "--keep-last", "1")
	if code != 1 || !strings.Contains(lastLine(stderr), "storage credentials cannot delete") {
		t.Errorf("retain with a no-delete credential: exit %d, stderr:\n%s\nwant exit 1, ending in one line saying the credentials cannot delete", code, stderr)
	}
}
