//go:build integration

package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// TestDirectBackup: backup_method direct of a cluster with a tablespace, an
// unlogged table, a replication slot and a leftover temporary file; the
// same cluster backed up with stream (BASE_BACKUP) unpacks to the same
// files; pg_verifybackup accepts both restored directories with the
// manifests the backups stored; the direct one starts and holds the data.
func TestDirectBackup(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	ctx := t.Context()
	tsDir := testenv.Dir(t)
	for _, sql := range []string{
		`CREATE TABLESPACE side LOCATION '` + tsDir + `'`,
		`CREATE TABLE side_rows TABLESPACE side AS SELECT g AS id FROM generate_series(1, 1234) g`,
		`CREATE UNLOGGED TABLE scratchpad AS SELECT g AS id FROM generate_series(1, 500) g`,
		`CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)`,
		`SELECT pg_create_physical_replication_slot('other')`,
	} {
		if err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	insert(t, c, "before", 100)
	if _, err := c.RunAsOwner(ctx, "pgbench", "-i", "-s", "2", "-q"); err != nil {
		t.Fatal(err)
	}
	// What sendDir leaves out, planted where the server would not mind.
	for _, p := range []string{"base/pgsql_tmp/pgsql_tmp999.0", "postgresql.auto.conf.tmp"} {
		full := filepath.Join(c.DataDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := scratch.ChownToPostgres(full); err != nil {
			t.Fatal(err)
		}
	}

	_, stderr, code := r.runEnv(append(backupEnv(c), "PITR_BACKUP_METHOD=stream"), "backup")
	if code != 0 || !strings.Contains(stderr, `"method":"stream"`) {
		t.Fatalf("stream backup: exit %d\n%s", code, stderr)
	}
	_, stderr, code = r.runEnv(append(backupEnv(c), "PITR_BACKUP_METHOD=direct"), "backup")
	if code != 0 || !strings.Contains(stderr, `"method":"direct"`) {
		t.Fatalf("direct backup: exit %d\n%s", code, stderr)
	}
	insert(t, c, "after", 7)
	switchAndWait(t, c, time.Minute)

	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Backups) != 2 {
		t.Fatalf("%d backups listed, want 2", len(lo.Backups))
	}
	var dirs, tss []string
	for i, b := range lo.Backups { // oldest first: stream, then direct
		dest, ts := restoredDir(t), filepath.Join(testenv.Dir(t), "side")
		r.mustRun(nil, "restore", "--backup", b.ID, "--to", "immediate", "--pgdata", dest, "--tablespace-map", tsDir+"="+ts)
		verifyRestored(t, c, dest, ts)
		dirs, tss = append(dirs, dest), append(tss, ts)
		t.Logf("backup %d (%s) verified", i, b.ID)
	}
	streamFiles, directFiles := listTree(t, dirs[0])+listTree(t, tss[0]), listTree(t, dirs[1])+listTree(t, tss[1])
	if streamFiles != directFiles {
		t.Errorf("direct backup holds other files than BASE_BACKUP's:\nstream:\n%s\ndirect:\n%s", streamFiles, directFiles)
	}
	for _, p := range []string{"base/pgsql_tmp", "postgresql.auto.conf.tmp", "pg_replslot/other", "postmaster.pid", "postmaster.opts"} {
		if _, err := os.Lstat(filepath.Join(dirs[1], p)); err == nil {
			t.Errorf("%s is in the direct backup", p)
		}
	}

	c2 := r.startRestored(dirs[1])
	if got, want := phaseCounts(t, c2), "before=100"; got != want {
		t.Errorf("rows %q, want %q", got, want)
	}
	if n, _ := c2.QueryInt(ctx, `SELECT count(*) FROM side_rows`); n != 1234 {
		t.Errorf("tablespace table has %d rows, want 1234", n)
	}
	if n, err := c2.QueryInt(ctx, `SELECT count(*) FROM scratchpad`); n != 0 || err != nil {
		t.Errorf("unlogged table has %d rows (%v), want 0: restored empty", n, err)
	}
	if n, _ := c2.QueryInt(ctx, `SELECT count(*) FROM pgbench_accounts`); n != 200000 {
		t.Errorf("pgbench_accounts has %d rows", n)
	}
}

// verifyRestored runs pg_verifybackup on a restored directory before it
// starts, with the tablespace linked where the manifest expects it.
func verifyRestored(t *testing.T, c *scratch.Cluster, dataDir, tsDir string) {
	t.Helper()
	oid, err := c.QueryString(t.Context(), `SELECT oid::text FROM pg_tablespace WHERE spcname = 'side'`)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dataDir, "pg_tblspc", oid)
	if err := os.Symlink(tsDir, link); err != nil {
		t.Fatal(err)
	}
	// --tablespace-map rewrote tablespace_map.
	out, err := exec.CommandContext(t.Context(), "/usr/lib/postgresql/15/bin/pg_verifybackup", "--no-parse-wal",
		"--ignore", "tablespace_map", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_verifybackup %s: %v\n%s", dataDir, err, out)
	}
	if err := os.Remove(link); err != nil { // the server makes it from tablespace_map
		t.Fatal(err)
	}
}

// listTree lists the files under dir with their sizes where those cannot
// differ between two backups of an idle cluster.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch rel {
		case "backup_label", "backup_manifest", "tablespace_map", "postgresql.auto.conf", "recovery.signal":
			return nil // differ by design
		}
		out = append(out, rel+map[bool]string{true: "/"}[d.IsDir()])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return strings.Join(out, "\n") + "\n"
}

// TestDirectBackupKilled: kill -9 of a direct backup once its first part is
// stored leaves no listed backup, the server aborts the backup when the
// session ends, and the next backup (direct again) succeeds.
func TestDirectBackupKilled(t *testing.T) {
	r := newRig(t, "local")
	c, _ := killableCluster(t, r)
	cmd := exec.Command(r.pitr, "backup")
	// The upload limit keeps base.tar in flight for seconds after the
	// tablespace's small part lands: unlimited, a direct backup of this
	// cluster can reach pg_backup_stop before the kill, and the server has
	// no backup left to abort.
	cmd.Env = append(append(os.Environ(), r.env...), append(backupEnv(c), "PITR_BACKUP_METHOD=direct", "PITR_LIMIT_UPLOAD=2MiB")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		parts, _ := filepath.Glob(filepath.Join(r.repoDir, "backups", "*", "*.tar.zst.age"))
		return len(parts) > 0, "backup wrote nothing"
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Backups) != 0 || len(lo.Incomplete) != 1 {
		t.Fatalf("after kill -9: %d backups listed, incomplete %v", len(lo.Backups), lo.Incomplete)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		b, _ := os.ReadFile(c.LogPath())
		return strings.Contains(string(b), "aborting backup due to backend exiting before pg_backup_stop was called"), "the server did not abort the backup"
	})
	// The session holding the backup sits idle while the files are read: a
	// role's idle_session_timeout must not end it.
	if err := c.Exec(t.Context(), `ALTER ROLE postgres SET idle_session_timeout = '200ms'`); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := r.runEnv(append(backupEnv(c), "PITR_BACKUP_METHOD=direct", "PITR_BACKUP_STALE_AFTER=1ns"), "backup")
	if code != 0 {
		t.Fatalf("second backup: exit %d\n%s", code, stderr)
	}
	lo = listOutput{}
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Backups) != 1 || len(lo.Incomplete) != 0 {
		t.Fatalf("after a new backup: %d backups, incomplete %v", len(lo.Backups), lo.Incomplete)
	}
}

// TestDirectRefused: backup_method direct refuses in one line when the
// role may not see data_directory; auto falls back to BASE_BACKUP.
func TestDirectRefused(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE ROLE repl LOGIN REPLICATION`); err != nil {
		t.Fatal(err)
	}
	env := []string{"PITR_PG_DSN=" + strings.Replace(c.DSN("postgres"), "user=postgres", "user=repl", 1)}
	_, stderr, code := r.runEnv(append(env, "PITR_BACKUP_METHOD=direct"), "backup")
	if code == 0 || !strings.Contains(lastLine(stderr), "backup_method direct: direct backup impossible: the role may not read data_directory") {
		t.Fatalf("direct without pg_read_all_settings: exit %d\n%s", code, stderr)
	}
	_, stderr, code = r.runEnv(env, "backup")
	if code != 0 || !strings.Contains(stderr, `"method":"stream"`) {
		t.Fatalf("auto without pg_read_all_settings: exit %d\n%s", code, stderr)
	}
}

// TestDirectBackupChecksumFailure: a page whose data checksum is wrong
// fails a direct backup as it fails BASE_BACKUP, and neither is listed.
func TestDirectBackupChecksumFailure(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	ctx := t.Context()
	if err := c.Exec(ctx, `CREATE TABLE victim AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	rel, err := c.QueryString(ctx, `SELECT pg_relation_filepath('victim')`)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil { // the page leaves shared buffers
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir, rel), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("corrupt"), 8192+4000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"direct", "stream"} {
		_, stderr, code := r.runEnv(append(backupEnv(c), "PITR_BACKUP_METHOD="+method), "backup")
		if code == 0 || !strings.Contains(lastLine(stderr), "checksum verification failure during base backup") {
			t.Errorf("%s backup of a corrupt page: exit %d\n%s", method, code, stderr)
		}
		if method == "direct" && !strings.Contains(stderr, `"block":1`) {
			t.Errorf("direct backup did not name block 1:\n%s", stderr)
		}
	}
	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Backups) != 0 {
		t.Fatalf("%d backups listed", len(lo.Backups))
	}
}
