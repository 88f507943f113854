//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// Every password below contains secretMark, which no output may.
const (
	secretMark = "S3cret"
	// dsnPassword has a quote and a space: the hardest keyword/value form,
	// password='Pw\'S3cret 1'.
	dsnPassword = `Pw'S3cret 1`
	envPassword = "EnvS3cret-2" // given in PGPASSWORD
)

// secretCluster is a cluster where the roles pitrsecret (password
// dsnPassword) and pitrenv (envPassword) must log in with SCRAM over
// 127.0.0.1, for replication too.
func secretCluster(r *rig) *scratch.Cluster {
	t := r.t
	t.Helper()
	c := r.cluster(nil)
	for role, pw := range map[string]string{"pitrsecret": dsnPassword, "pitrenv": envPassword} {
		sql := fmt.Sprintf(`CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'`, role, strings.ReplaceAll(pw, "'", "''"))
		if err := c.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
	hba := filepath.Join(c.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	lines := "host all pitrsecret,pitrenv 127.0.0.1/32 scram-sha-256\nhost replication pitrsecret,pitrenv 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(hba, append([]byte(lines), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(t.Context(), `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	// The reload is asynchronous: wait until a wrong password is refused.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		conn, err := pgx.Connect(t.Context(), fmt.Sprintf("host=127.0.0.1 port=%d user=pitrsecret dbname=postgres sslmode=disable password=wrong", c.Port))
		if err != nil {
			return true, ""
		}
		conn.Close(t.Context())
		return false, "pg_hba.conf reload did not take effect"
	})
	return c
}

func kvDSN(c *scratch.Cluster) string {
	return fmt.Sprintf(`host=127.0.0.1 port=%d user=pitrsecret dbname=postgres sslmode=disable password='%s'`,
		c.Port, strings.ReplaceAll(dsnPassword, "'", `\'`))
}

// assertNoSecret fails if out holds any of the passwords.
func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, secretMark) {
		t.Errorf("%s shows a password:\n%s", what, out)
	}
}

// TestSecretsStaySecret: `pitr config` printed pg_dsn with its password;
// restore wrote the whole config, password included, into
// $PGDATA/pitr-restore.yaml, which also made pg_verifybackup fail. Now no
// output of config, backup, dump or wal-receive at debug level, nor their
// errors, nor the restored data directory holds a password from pg_dsn or
// PGPASSWORD, and the restored directory passes pg_verifybackup.
func TestSecretsStaySecret(t *testing.T) {
	r := newRig(t, "local")
	c := secretCluster(r)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial, phase text)`); err != nil {
		t.Fatal(err)
	}
	debug := []string{"PITR_LOG_LEVEL=debug", "PGPASSWORD=" + envPassword}
	kv := append([]string{"PITR_PG_DSN=" + kvDSN(c)}, debug...)
	urlUser := append([]string{fmt.Sprintf("PITR_PG_DSN=postgres://pitrsecret:%s@127.0.0.1:%d/postgres?sslmode=disable",
		strings.NewReplacer("'", "%27", " ", "%20").Replace(dsnPassword), c.Port)}, debug...)
	urlEnv := append([]string{fmt.Sprintf("PITR_PG_DSN=postgres://pitrenv@127.0.0.1:%d/postgres?sslmode=disable", c.Port)}, debug...)

	// pitr config, from the environment and from a file.
	out, stderr, code := r.runEnv(kv, "config")
	assertNoSecret(t, "pitr config", out+stderr)
	if code != 0 || !strings.Contains(out, "password=redacted") || !strings.Contains(out, "user=pitrsecret") {
		t.Errorf("pitr config: exit %d:\n%s%s", code, out, stderr)
	}
	cfgFile := filepath.Join(testenv.Dir(t), "pitr.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("pg_dsn: %q\n", strings.TrimPrefix(urlUser[0], "PITR_PG_DSN="))), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = r.runEnv(debug, "--config", cfgFile, "config")
	assertNoSecret(t, "pitr config --config", out+stderr)
	if code != 0 || !strings.Contains(out, "pitrsecret:redacted@") {
		t.Errorf("pitr config --config: exit %d:\n%s%s", code, out, stderr)
	}

	// The jobs, each connecting with a password, at debug level (backup
	// and dump IDs are per second: one run of each kind per database).
	for _, run := range []struct {
		name string
		env  []string
		args []string
	}{
		{"backup, keyword/value dsn", kv, []string{"backup"}},
		{"dump, URL dsn with password", urlUser, []string{"dump", "--db", "postgres"}},
		{"dump, config file", debug, []string{"--config", cfgFile, "dump", "--db", "template1"}},
	} {
		out, stderr, code := r.runEnv(run.env, run.args...)
		assertNoSecret(t, run.name, out+stderr)
		if code != 0 {
			t.Fatalf("%s: exit %d:\n%s", run.name, code, stderr)
		}
		if !strings.Contains(stderr, `"level":"debug"`) && !strings.Contains(stderr, `"level":"info"`) {
			t.Errorf("%s logged nothing; the check proves little:\n%s", run.name, stderr)
		}
	}

	// Errors: a wrong password, and a connection string pgconn cannot parse.
	for _, run := range []struct{ name, dsn string }{
		{"wrong password", strings.Replace(kvDSN(c), "Pw", "Wrong", 1)},
		{"unparseable dsn", strings.Replace(kvDSN(c), fmt.Sprint(c.Port), "notaport", 1)},
		{"unparseable URL", strings.TrimPrefix(urlUser[0], "PITR_PG_DSN=") + "%zz"},
	} {
		_, stderr, code := r.runEnv(append([]string{"PITR_PG_DSN=" + run.dsn}, debug...), "backup")
		assertNoSecret(t, run.name, stderr)
		if strings.Contains(stderr, " 1'") || strings.Contains(stderr, "1%20") {
			t.Errorf("%s: error shows the end of the password: %s", run.name, stderr)
		}
		if code == 0 {
			t.Errorf("%s: backup succeeded", run.name)
		}
		t.Logf("%s: %s", run.name, lastLine(stderr))
	}

	// wal-receive streams with PGPASSWORD, then stops on SIGTERM.
	rc := r.startReceiver(c, urlEnv...)
	insert(t, c, "streamed", 1)
	waitStreamed(t, c, rc, time.Minute)
	if code := rc.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("wal-receive exit %d:\n%s", code, rc.output())
	}
	assertNoSecret(t, "wal-receive", rc.output())
	r.mustRun(urlEnv, "wal-receive", "--drop-slot")

	// wal-receive with a wrong password logs its reconnect attempts, or
	// exits: either way without the password.
	wrong := r.startReceiver(c, append([]string{"PITR_PG_DSN=" + strings.Replace(kvDSN(c), "Pw", "Wrong", 1)}, debug...)...)
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		return strings.Contains(wrong.output(), "password authentication failed"), "wal-receive with a wrong password: no error:\n" + wrong.output()
	})
	wrong.stop(syscall.SIGTERM)
	assertNoSecret(t, "wal-receive with a wrong password", wrong.output())
	t.Logf("wal-receive, wrong password: %s", lastLine(wrong.output()))

	// A restore run with the password in its settings writes none of it.
	switchAndWait(t, c, time.Minute)
	dir := restoredDir(t)
	out, stderr, code = r.runEnv(kv, "--config", cfgFile, "restore", "--to", "latest", "--pgdata", dir)
	assertNoSecret(t, "restore", out+stderr)
	if code != 0 {
		t.Fatalf("restore: exit %d:\n%s", code, stderr)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(secretMark)) {
			t.Errorf("restored %s holds a password", p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("search the restored directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pitr-restore.yaml")); err == nil {
		t.Errorf("restore wrote pitr-restore.yaml into the data directory")
	}
	auto, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	if !strings.Contains(string(auto), "restore_command = 'PITR_CONFIG=/dev/null PITR_REPO=''file://") {
		t.Errorf("postgresql.auto.conf:\n%s", auto)
	}

	// PostgreSQL's own check of the restored, not yet started directory:
	// every file against backup_manifest, with no -i. The WAL the backup
	// needs is in the repository, not in pg_wal, so -n skips parsing it;
	// with that WAL fetched into a directory, -w checks it too.
	pgVerify := func(args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(c.BinDir, "pg_verifybackup"), append(args, dir)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("pg_verifybackup %s: %v\n%s", strings.Join(append(args, dir), " "), err, out)
		}
	}
	pgVerify("-n")
	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	b := lo.Backups[0].Backup
	walDir := testenv.Dir(t)
	for _, seg := range segmentRange(t, b.StartWAL, b.EndWAL, b.WALSegmentSize) {
		r.mustRun([]string{"PITR_FETCH_PREFETCH=0"}, "wal-fetch", seg, filepath.Join(walDir, seg))
	}
	pgVerify("-w", walDir)

	// restore_command is self-contained: a server whose environment names
	// another repository and no identity still recovers.
	srv := scratch.Open(scratch.Options{Dir: testenv.Dir(t), Settings: map[string]string{"archive_mode": "off"},
		Env: []string{"PITR_REPO=file:///nonexistent", "PITR_CONFIG=/nonexistent.yaml"}}, dir)
	t.Cleanup(func() {
		if t.Failed() {
			testenv.DumpLog(t, srv)
		}
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("stop the restored server: %v", err)
		}
	})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		n, err := srv.QueryInt(t.Context(), `SELECT count(*) FROM marker WHERE phase = 'streamed' AND NOT pg_is_in_recovery()`)
		return err == nil && n == 1, fmt.Sprintf("restored server did not recover the streamed row (%d, %v)", n, err)
	})
	if b, err := os.ReadFile(srv.LogPath()); err == nil {
		assertNoSecret(t, "restored server log (wal-fetch at debug level)", string(b))
	}
}

// TestRestorePreflight: the README's own example (an identity at /root,
// mode 0600) failed at wal-fetch with "permission denied", halfway into
// recovery. An identity the server's user cannot read, and with --start a
// port already in use, are refused before anything is written.
func TestRestorePreflight(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the server runs as postgres")
	}
	r := newRig(t, "local")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial, phase text)`); err != nil {
		t.Fatal(err)
	}
	r.mustRun(backupEnv(c), "backup")
	insert(t, c, "x", 10)
	switchAndWait(t, c, time.Minute)

	// A copy of the identity only root can read, in a directory the
	// postgres user cannot search.
	private := filepath.Join(testenv.Dir(t), "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(r.identity)
	rootKey := filepath.Join(private, "pitr-identity.txt")
	if err := os.WriteFile(rootKey, key, 0o600); err != nil {
		t.Fatal(err)
	}

	dest := restoredDir(t)
	_, stderr, code := r.runEnv([]string{"PITR_AGE_IDENTITY_FILE=" + rootKey}, "restore", "--to", "latest", "--pgdata", dest)
	want := "the server runs as postgres and cannot read " + rootKey + ": chgrp postgres " + rootKey + " && chmod 0640 " + rootKey + " (and make " + private + " searchable by postgres)"
	if code != 1 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Fatalf("unreadable identity: exit %d, %q; want %q", code, stderr, want)
	}
	assertAbsent(t, dest)
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".pitr-restore-*")); len(left) != 0 {
		t.Fatalf("staging left behind: %v", left)
	}
	// Doing what it says makes the restore work.
	if err := os.Chown(rootKey, 0, postgresGID(t)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rootKey, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(private, 0o711); err != nil {
		t.Fatal(err)
	}
	r.mustRun([]string{"PITR_AGE_IDENTITY_FILE=" + rootKey}, "restore", "--to", "latest", "--pgdata", dest)

	// --start with a busy port: refused before unpacking.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	dest = restoredDir(t)
	_, stderr, code = r.run("restore", "--to", "latest", "--pgdata", dest, "--start", "--archive-mode", "off", "--port", strconv.Itoa(port))
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("--port %d is in use", port)) {
		t.Fatalf("busy port: exit %d, %q", code, stderr)
	}
	assertAbsent(t, dest)
}

// segmentRange lists the WAL segments from first to last, on one timeline.
func segmentRange(t *testing.T, first, last string, segSize int64) []string {
	t.Helper()
	perID := uint64(0x100000000 / segSize)
	num := func(name string) uint64 {
		hi, err1 := strconv.ParseUint(name[8:16], 16, 32)
		lo, err2 := strconv.ParseUint(name[16:24], 16, 32)
		if err1 != nil || err2 != nil || len(name) != 24 {
			t.Fatalf("segment name %q", name)
		}
		return hi*perID + lo
	}
	var out []string
	for n := num(first); n <= num(last); n++ {
		out = append(out, fmt.Sprintf("%s%08X%08X", first[:8], n/perID, n%perID))
	}
	return out
}

func postgresGID(t *testing.T) int {
	_, gid, ok := scratch.PostgresUser()
	if !ok {
		t.Fatal("no postgres user")
	}
	return gid
}
