//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// backupEnv points pitr backup at the cluster.
func backupEnv(c *scratch.Cluster) []string {
	return []string{"PITR_PG_DSN=" + c.DSN("postgres")}
}

func (r *rig) mustRun(extra []string, args ...string) string {
	r.t.Helper()
	out, stderr, code := r.runEnv(extra, args...)
	if code != 0 {
		r.t.Fatalf("pitr %v: exit %d\n%s", args, code, stderr)
	}
	return out
}

// startRestored starts a restored data directory and waits until recovery
// has ended (the server promoted).
func (r *rig) startRestored(dataDir string) *scratch.Cluster {
	r.t.Helper()
	env := append(append([]string{}, r.env...), "PITR_AGE_IDENTITY_FILE="+r.identity)
	c := scratch.Open(scratch.Options{Dir: testenv.Dir(r.t), Env: env}, dataDir)
	r.t.Cleanup(func() { // r.t.Context() is done by now
		if r.t.Failed() {
			testenv.DumpLog(r.t, c)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			r.t.Errorf("stop restored server: %v", err)
		}
	})
	if err := c.Start(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
	testenv.Eventually(r.t, 2*time.Minute, func() (bool, string) {
		in, err := c.QueryString(r.t.Context(), `SELECT pg_is_in_recovery()::text`)
		return err == nil && in == "false", fmt.Sprintf("still in recovery (%v)", err)
	})
	return c
}

func phaseCounts(t *testing.T, c *scratch.Cluster) string {
	t.Helper()
	s, err := c.QueryString(t.Context(), `SELECT coalesce(string_agg(phase || '=' || n, ' ' ORDER BY phase), '') FROM (SELECT phase, count(*) n FROM marker GROUP BY phase) x`)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func insert(t *testing.T, c *scratch.Cluster, phase string, n int) {
	t.Helper()
	if err := c.Exec(t.Context(), `INSERT INTO marker (phase) SELECT $1 FROM generate_series(1, $2)`, phase, n); err != nil {
		t.Fatal(err)
	}
}

func restoredDir(t *testing.T) string {
	d := filepath.Join(testenv.Dir(t), "pgdata")
	return d
}

// TestPITREndToEnd is the story a DBA needs: base backup, marker rows, a
// recorded moment T, more rows and an accidental DELETE; restore to T gives
// exactly the rows at T; after that restore promoted (timeline 2) and wrote
// more, restore to latest follows timeline 2.
func TestPITREndToEnd(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL, at timestamptz DEFAULT clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "a-before-backup", 100)
	out := r.mustRun(backupEnv(c), "backup")
	t.Logf("backup: %s", strings.TrimSpace(out))
	insert(t, c, "b-after-backup", 50)
	time.Sleep(1100 * time.Millisecond)
	T := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond)
	insert(t, c, "c-after-T", 30)
	if err := c.Exec(t.Context(), `DELETE FROM marker WHERE phase = 'a-before-backup'`); err != nil {
		t.Fatal(err)
	}
	switchAndWait(t, c, time.Minute)

	list := r.mustRun(nil, "list")
	t.Logf("list:\n%s", list)
	if !strings.Contains(list, "restorable to any moment from") {
		t.Fatalf("list shows no window:\n%s", list)
	}

	dir1 := restoredDir(t)
	r.mustRun(nil, "restore", "--to", T.Format(time.RFC3339Nano), "--pgdata", dir1)
	c1 := r.startRestored(dir1)
	if got, want := phaseCounts(t, c1), "a-before-backup=100 b-after-backup=50"; got != want {
		t.Fatalf("restore to T: rows %q, want %q", got, want)
	}
	tli, _ := c1.QueryInt(t.Context(), `SELECT timeline_id FROM pg_control_checkpoint()`)
	if tli < 2 {
		t.Fatalf("restored cluster on timeline %d, want a new timeline", tli)
	}
	// The restored cluster archives into the same repository on its new
	// timeline; restore to latest must follow it.
	insert(t, c1, "d-timeline2", 7)
	switchAndWait(t, c1, time.Minute)
	if err := c1.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	dir2 := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir2)
	c2 := r.startRestored(dir2)
	if got, want := phaseCounts(t, c2), "a-before-backup=100 b-after-backup=50 d-timeline2=7"; got != want {
		t.Fatalf("restore to latest after promotion: rows %q, want %q", got, want)
	}
	var lo listOutput
	js := r.mustRun(nil, "list", "--json")
	if err := json.Unmarshal([]byte(js), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Backups) != 1 || len(lo.Timelines) < 2 {
		t.Fatalf("list --json: %d backups, timelines %v", len(lo.Backups), lo.Timelines)
	}
	show := r.mustRun(nil, "show", lo.Backups[0].ID)
	for _, field := range []string{"system_identifier", "start_lsn", "end_lsn", "sha256", "pg_version", "host"} {
		if !strings.Contains(show, field) {
			t.Errorf("show lacks %s", field)
		}
	}
}

// TestRestoreRefusals covers the errors a restore must give, each leaving
// nothing half-written and no server running without data.
func TestRestoreRefusals(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial, phase text)`); err != nil {
		t.Fatal(err)
	}
	r.mustRun(backupEnv(c), "backup")
	var names []string
	for i := 0; i < 3; i++ {
		insert(t, c, "x", 10)
		names = append(names, switchAndWait(t, c, time.Minute))
	}
	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	b := lo.Backups[0].Backup

	expectFail := func(wantCode int, want string, args ...string) {
		t.Helper()
		_, stderr, code := r.run(args...)
		if code != wantCode || !strings.Contains(stderr, want) {
			t.Fatalf("pitr %v: exit %d, stderr %q; want exit %d and %q", args, code, stderr, wantCode, want)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
			t.Errorf("pitr %v: error is not one line: %q", args, stderr)
		}
	}

	// A non-empty --pgdata is refused and left as it was.
	full := filepath.Join(testenv.Dir(t), "full")
	if err := os.Mkdir(full, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	expectFail(1, "not empty", "restore", "--to", "latest", "--pgdata", full)
	if entries, _ := os.ReadDir(full); len(entries) != 1 {
		t.Fatalf("refused restore touched the directory: %v", entries)
	}

	expectFail(2, "--to", "restore", "--to", "yesterday", "--pgdata", restoredDir(t))
	expectFail(1, "restorable to any moment from", "restore", "--to", "2001-01-01T00:00:00Z", "--pgdata", restoredDir(t))
	expectFail(1, "after the last archived WAL", "restore", "--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--pgdata", restoredDir(t))

	// Wrong key: fails, nothing written.
	other := filepath.Join(testenv.Dir(t), "other.txt")
	r.run("keygen", "--output", other)
	if err := scratch.ChownToPostgres(other); err != nil { // else the preflight refuses it first
		t.Fatal(err)
	}
	dest := restoredDir(t)
	_, stderr, code := r.runEnv([]string{"PITR_AGE_IDENTITY_FILE=" + other}, "restore", "--to", "latest", "--pgdata", dest)
	if code == 0 || !strings.Contains(stderr, "wrong or missing key") {
		t.Fatalf("wrong key: exit %d: %s", code, stderr)
	}
	assertAbsent(t, dest)

	// A gap in the WAL after the backup names the missing segment.
	gapSeg := names[1]
	moveWAL(t, r.repoDir, gapSeg, "away")
	expectFail(1, "segment "+gapSeg+" is missing", "restore", "--to", "latest", "--pgdata", restoredDir(t))
	moveWAL(t, r.repoDir, gapSeg, "back")

	// A segment the backup itself needs.
	moveWAL(t, r.repoDir, b.EndWAL, "away")
	expectFail(1, "WAL segment "+b.EndWAL+" is missing", "restore", "--to", "latest", "--pgdata", restoredDir(t))
	moveWAL(t, r.repoDir, b.EndWAL, "back")

	// A tampered part: fails, nothing half-written.
	part := filepath.Join(r.repoDir, filepath.FromSlash(b.Parts[0].Key))
	data, _ := os.ReadFile(part)
	orig := append([]byte(nil), data...)
	data[len(data)/2] ^= 0x10
	if err := os.WriteFile(part, data, 0o640); err != nil {
		t.Fatal(err)
	}
	dest = restoredDir(t)
	_, stderr, code = r.run("restore", "--to", "latest", "--pgdata", dest)
	if code == 0 {
		t.Fatal("restore of a tampered backup succeeded")
	}
	t.Logf("tampered: %s", strings.TrimSpace(stderr))
	assertAbsent(t, dest)
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".pitr-restore-*")); len(left) != 0 {
		t.Fatalf("staging left behind: %v", left)
	}
	if err := os.WriteFile(part, orig, 0o640); err != nil {
		t.Fatal(err)
	}

	// And with everything back in place, it restores.
	dest = restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dest)
	c2 := r.startRestored(dest)
	if n, _ := c2.QueryInt(t.Context(), `SELECT count(*) FROM marker`); n != 30 {
		t.Fatalf("restored %d rows, want 30", n)
	}
}

func assertAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists after a failed restore (%v)", path, err)
	}
}

// moveWAL hides or restores a segment's object in a local repository.
func moveWAL(t *testing.T, repo, name, dir string) {
	t.Helper()
	pattern := filepath.Join(repo, "wal", name[:16], name+".*")
	if dir == "back" {
		matches, _ := filepath.Glob(pattern + ".hidden")
		for _, m := range matches {
			if err := os.Rename(m, strings.TrimSuffix(m, ".hidden")); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var matches []string
	all, _ := filepath.Glob(pattern)
	for _, m := range all {
		rel, _ := filepath.Rel(repo, m)
		if o, ok := catalog.ParseWALKey(filepath.ToSlash(rel)); ok && o.Name == name {
			matches = append(matches, m)
		}
	}
	if len(matches) != 1 {
		t.Fatalf("segment %s: %d objects", name, len(matches))
	}
	if err := os.Rename(matches[0], matches[0]+".hidden"); err != nil {
		t.Fatal(err)
	}
}

// killableCluster is r's cluster with a tablespace (in tsDir) and pgbench
// scale 10: big enough that a backup can be killed after its first part is
// stored.
func killableCluster(t *testing.T, r *rig) (c *scratch.Cluster, tsDir string) {
	t.Helper()
	c = r.cluster(nil)
	tsDir = testenv.Dir(t)
	if err := c.Exec(t.Context(), `CREATE TABLESPACE side LOCATION '`+tsDir+`'`); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(t.Context(), `CREATE TABLE side_rows TABLESPACE side AS SELECT g AS id FROM generate_series(1, 1234) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RunAsOwner(t.Context(), "pgbench", "-i", "-s", "10", "-q"); err != nil {
		t.Fatal(err)
	}
	return c, tsDir
}

// TestBackupKilled: kill -9 of pitr backup midway leaves no listed backup;
// the next backup succeeds and cleans up.
func TestBackupKilled(t *testing.T) {
	r := newRig(t, "local")
	c, tsDir := killableCluster(t, r)
	cmd := exec.Command(r.pitr, "backup")
	cmd.Env = append(append(os.Environ(), r.env...), append(backupEnv(c), "PITR_LIMIT_UPLOAD=2MiB")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		// The tablespace's part comes first; base.tar, held to 2 MiB/s,
		// takes seconds.
		parts, _ := filepath.Glob(filepath.Join(r.repoDir, "backups", "*", "*.tar.zst.age"))
		return len(parts) > 0, "backup wrote nothing"
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed"
	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Backups) != 0 || len(lo.Incomplete) != 1 {
		t.Fatalf("after kill -9: %d backups listed, incomplete %v", len(lo.Backups), lo.Incomplete)
	}
	entries, _ := filepath.Glob(filepath.Join(r.repoDir, "backups", "*", catalog.BackupEntryName))
	if len(entries) != 0 {
		t.Fatalf("entry written by a killed backup: %v", entries)
	}
	_, stderr, code := r.runEnv(append(backupEnv(c), "PITR_BACKUP_STALE_AFTER=1ns"), "backup")
	t.Logf("second backup (exit %d):\n%s", code, stderr)
	lo = listOutput{}
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Backups) != 1 || len(lo.Incomplete) != 0 {
		left, _ := filepath.Glob(filepath.Join(r.repoDir, "backups", "*", "*"))
		t.Fatalf("after a new backup: %d backups, incomplete %v; files %v", len(lo.Backups), lo.Incomplete, left)
	}

	// The tablespace restores elsewhere with --tablespace-map.
	newTS := filepath.Join(testenv.Dir(t), "side")
	dest := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "immediate", "--pgdata", dest, "--tablespace-map", tsDir+"="+newTS)
	c2 := r.startRestored(dest)
	if n, _ := c2.QueryInt(t.Context(), `SELECT count(*) FROM side_rows`); n != 1234 {
		t.Fatalf("tablespace table has %d rows, want 1234", n)
	}
	loc, _ := c2.QueryString(t.Context(), `SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'side'`)
	if loc != newTS {
		t.Fatalf("tablespace at %q, want %q", loc, newTS)
	}
}

// TestBackupStorageDown: MinIO stops while a backup streams; the backup
// fails, and once MinIO is back nothing is listed as restorable from it.
func TestBackupStorageDown(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if _, err := c.RunAsOwner(t.Context(), "pgbench", "-i", "-s", "10", "-q"); err != nil {
		t.Fatal(err)
	}
	// 10 MiB/s: the backup (about 23 MB stored) takes over 2 s, so MinIO
	// stops while it streams however fast the machine reads.
	cmd := exec.Command(r.pitr, "backup")
	cmd.Env = append(append(append(os.Environ(), r.env...), backupEnv(c)...), "PITR_RETRY_TIMEOUT=5s", "PITR_LIMIT_UPLOAD=10MiB")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(stderr.String(), `"backup started"`), "the backup did not start"
	})
	time.Sleep(300 * time.Millisecond)
	r.minio.Stop(t)
	err := cmd.Wait()
	if err == nil {
		t.Fatalf("backup succeeded with storage down:\n%s", stderr.String())
	}
	t.Logf("backup with storage down: %v: %s", err, lastLine(stderr.String()))
	r.minio.Start(t)
	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Backups) != 0 {
		t.Fatalf("a failed backup is listed: %+v", lo.Backups)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
