//go:build integration

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage/local"
	"github.com/pitr-dev/pitr/wal"
)

// rig runs the real pitr binary against one repository.
type rig struct {
	t         *testing.T
	pitr      string
	env       []string // repository and recipients, for archive_command too
	identity  string
	recipient string
	repoDir   string // local repositories only
	minio     *testenv.MinIOServer
	bucket    string // MinIO repositories only, under prefix db1
	socket    string // PITR_SOCKET: the daemon's wal-push socket
}

func newRig(t *testing.T, backend string) *rig {
	t.Helper()
	r := &rig{t: t, pitr: testenv.PitrBinary(t)}
	dir := testenv.Dir(t)
	r.identity = filepath.Join(dir, "identity.txt")
	out, _, code := r.run("keygen", "--output", r.identity)
	if code != 0 {
		t.Fatalf("keygen exit %d", code)
	}
	r.recipient = strings.TrimSpace(out)
	// restore_command runs as the server's user and must read the key.
	if err := scratch.ChownToPostgres(r.identity); err != nil {
		t.Fatal(err)
	}
	r.env = []string{"PITR_AGE_RECIPIENTS=" + r.recipient, "PITR_LOG_FORMAT=json"}
	// The daemon's wal-push socket: one per rig, never the shared default
	// (unix socket paths are short: not under the test's directory).
	sockDir, err := os.MkdirTemp("", "pitrsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if err := os.Chmod(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.socket = filepath.Join(sockDir, "pitr.sock")
	r.env = append(r.env, "PITR_SOCKET="+r.socket)
	switch backend {
	case "local":
		r.repoDir = filepath.Join(dir, "repo")
		if err := os.Mkdir(r.repoDir, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := scratch.ChownToPostgres(r.repoDir); err != nil {
			t.Fatal(err)
		}
		r.env = append(r.env, "PITR_REPO=file://"+r.repoDir)
	case "minio":
		r.minio = testenv.MinIO(t)
		r.bucket = r.minio.NewBucket(t)
		r.env = append(r.env, "PITR_REPO=s3://"+r.bucket+"/db1", "PITR_S3_ENDPOINT="+r.minio.Endpoint)
		r.env = append(r.env, r.minio.Env()...)
	default:
		t.Fatalf("unknown backend %s", backend)
	}
	return r
}

// run runs pitr as root with the rig's settings and the identity file.
func (r *rig) run(args ...string) (stdout, stderr string, code int) {
	return r.runEnv(nil, args...)
}

func (r *rig) runEnv(extra []string, args ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.pitr, args...)
	cmd.Env = append(append(append(os.Environ(), r.env...), "PITR_AGE_IDENTITY_FILE="+r.identity), extra...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		r.t.Fatalf("run pitr %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func (r *rig) cluster(settings map[string]string) *scratch.Cluster {
	r.t.Helper()
	s := map[string]string{
		"archive_mode":    "on",
		"archive_command": fmt.Sprintf("'%s' wal-push %%p", r.pitr),
		"wal_keep_size":   "1GB", // keep archived segments in pg_wal to compare with
	}
	for k, v := range settings {
		s[k] = v
	}
	return testenv.PostgresWith(r.t, scratch.Options{Settings: s, Env: r.env})
}

// switchAndWait forces a segment switch and waits until that segment is
// archived; it returns the segment's name.
func switchAndWait(t *testing.T, c *scratch.Cluster, timeout time.Duration) string {
	t.Helper()
	ctx := t.Context()
	name, err := c.QueryString(ctx, `SELECT pg_walfile_name(pg_switch_wal())`)
	if err != nil {
		t.Fatal(err)
	}
	waitArchived(t, c, name, timeout)
	return name
}

func waitArchived(t *testing.T, c *scratch.Cluster, name string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, func() (bool, string) {
		last, _ := c.QueryString(t.Context(), `SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver`)
		if last >= name && !strings.Contains(last, ".") || len(last) >= len(name) && last[:len(name)] > name {
			return true, ""
		}
		// The archiver may have archived name and then a .backup file of
		// the same segment (last "<name>.00000028.backup"): its .done says so.
		if done, _ := c.QueryInt(t.Context(), `SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name = $1`, name+".done"); done > 0 {
			return true, ""
		}
		failed, _ := c.QueryString(t.Context(), `SELECT failed_count || ' failures, last: ' || coalesce(last_failed_wal, '-') FROM pg_stat_archiver`)
		return false, fmt.Sprintf("%s not archived (last archived %q; %s)", name, last, failed)
	})
}

// TestArchiveRealWorkload archives the WAL of a pgbench load through
// archive_command and fetches every archived segment back byte-identical.
func TestArchiveRealWorkload(t *testing.T) {
	for _, backend := range []string{"local", "minio"} {
		t.Run(backend, func(t *testing.T) {
			r := newRig(t, backend)
			c := r.cluster(nil)
			if _, err := c.RunAsOwner(t.Context(), "pgbench", "-i", "-s", "4", "-q"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.RunAsOwner(t.Context(), "pgbench", "-t", "500", "-c", "2"); err != nil {
				t.Fatal(err)
			}
			last := switchAndWait(t, c, time.Minute)
			statuses, _ := filepath.Glob(filepath.Join(c.DataDir, "pg_wal", "archive_status", "*.done"))
			var names []string
			for _, s := range statuses {
				names = append(names, strings.TrimSuffix(filepath.Base(s), ".done"))
			}
			sort.Strings(names)
			if len(names) < 4 {
				t.Fatalf("only %d files archived: %v", len(names), names)
			}
			dest := filepath.Join(testenv.Dir(t), "RECOVERYXLOG")
			compared := 0
			for _, name := range names {
				_, stderr, code := r.runEnv([]string{"PITR_FETCH_PREFETCH=0"}, "wal-fetch", name, dest)
				if code != 0 {
					t.Fatalf("wal-fetch %s: exit %d: %s", name, code, stderr)
				}
				orig, err := os.ReadFile(filepath.Join(c.DataDir, "pg_wal", name))
				if err != nil {
					continue // a .backup or recycled file
				}
				got, _ := os.ReadFile(dest)
				if !bytes.Equal(orig, got) {
					t.Fatalf("%s: fetched copy differs from pg_wal", name)
				}
				compared++
			}
			t.Logf("%d files archived up to %s, %d compared byte for byte", len(names), last, compared)
			if compared < 4 {
				t.Fatalf("compared only %d segments", compared)
			}
		})
	}
}

// TestWALPushDuplicate pushes the same file twice (success) and a different
// file under the same name (refused, stored copy kept).
func TestWALPushDuplicate(t *testing.T) {
	r := newRig(t, "local")
	pgwal := filepath.Join(testenv.Dir(t), "pg_wal")
	if err := os.MkdirAll(filepath.Join(pgwal, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(pgwal, "000000010000000000000007")
	orig := bytes.Repeat([]byte("segment seven "), 80000)
	if err := os.WriteFile(seg, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, stderr, code := r.run("wal-push", seg); code != 0 {
			t.Fatalf("push %d: exit %d: %s", i, code, stderr)
		}
	}
	changed := bytes.Clone(orig)
	changed[len(changed)/2] ^= 1
	if err := os.WriteFile(seg, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := r.run("wal-push", seg)
	if code != 1 || !strings.Contains(stderr, "already archived with different content") {
		t.Fatalf("different content: exit %d, stderr %q", code, stderr)
	}
	dest := filepath.Join(testenv.Dir(t), "x")
	if _, stderr, code := r.run("wal-fetch", "000000010000000000000007", dest); code != 0 {
		t.Fatalf("fetch: exit %d: %s", code, stderr)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, orig) {
		t.Fatal("stored copy was overwritten")
	}
}

// TestWALFetchFailures: a missing segment exits 1; a wrong key, a tampered
// object and unreachable storage exit above 125 and write nothing.
func TestWALFetchFailures(t *testing.T) {
	r := newRig(t, "local")
	pgwal := filepath.Join(testenv.Dir(t), "pg_wal")
	if err := os.MkdirAll(filepath.Join(pgwal, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(pgwal, "000000010000000000000003")
	if err := os.WriteFile(seg, bytes.Repeat([]byte("wal "), 1<<18), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := r.run("wal-push", seg); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	restoreDir := testenv.Dir(t)
	dest := filepath.Join(restoreDir, "RECOVERYXLOG")
	noFiles := func(what string) {
		t.Helper()
		entries, _ := os.ReadDir(restoreDir)
		if len(entries) != 0 {
			t.Fatalf("%s: files left behind: %v", what, entries)
		}
	}

	_, stderr, code := r.run("wal-fetch", "000000010000000000000004", dest)
	if code != 1 {
		t.Fatalf("missing segment: exit %d, want 1: %s", code, stderr)
	}
	noFiles("missing")

	otherID := filepath.Join(testenv.Dir(t), "other.txt")
	r.run("keygen", "--output", otherID)
	_, stderr, code = r.runEnv([]string{"PITR_AGE_IDENTITY_FILE=" + otherID}, "wal-fetch", "000000010000000000000003", dest)
	if code <= 125 || !strings.Contains(stderr, "wrong or missing key") {
		t.Fatalf("wrong key: exit %d, stderr %q", code, stderr)
	}
	noFiles("wrong key")

	_, stderr, code = r.runEnv([]string{"PITR_AGE_IDENTITY_FILE="}, "wal-fetch", "000000010000000000000003", dest)
	if code <= 125 {
		t.Fatalf("no identity: exit %d, stderr %q", code, stderr)
	}

	st, err := local.Open(r.repoDir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := wal.ListWAL(t.Context(), st, "000000010000000000000003")
	if err != nil || len(objs) != 1 {
		t.Fatalf("list: %v %v", objs, err)
	}
	path := filepath.Join(r.repoDir, filepath.FromSlash(objs[0].Key))
	b, _ := os.ReadFile(path)
	b[len(b)-100] ^= 0x40
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = r.run("wal-fetch", "000000010000000000000003", dest)
	if code <= 125 || !strings.Contains(stderr, "tampered") {
		t.Fatalf("tampered: exit %d, stderr %q", code, stderr)
	}
	noFiles("tampered")

	start := time.Now()
	_, stderr, code = r.runEnv([]string{"PITR_REPO=s3://bucket/x", "PITR_S3_ENDPOINT=http://127.0.0.1:1", "PITR_RETRY_TIMEOUT=2s",
		"AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y"}, "wal-fetch", "000000010000000000000003", dest)
	if code <= 125 {
		t.Fatalf("storage down: exit %d, want >125: %s", code, stderr)
	}
	t.Logf("storage down: exit %d after %s", code, time.Since(start).Round(time.Millisecond))
	noFiles("storage down")
}

// TestArchiveMinIOOutage stops MinIO while PostgreSQL archives: pushes fail
// and PostgreSQL keeps the segments; once MinIO is back every segment is
// archived and none is missing.
func TestArchiveMinIOOutage(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	first := switchAndWait(t, c, time.Minute)
	r.minio.Stop(t)
	var last string
	for i := 0; i < 3; i++ {
		if err := c.Exec(t.Context(), `CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t SELECT generate_series(1, 10000)`); err != nil {
			t.Fatal(err)
		}
		last, _ = c.QueryString(t.Context(), `SELECT pg_walfile_name(pg_switch_wal())`)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		failed, _ := c.QueryInt(t.Context(), `SELECT failed_count FROM pg_stat_archiver`)
		return failed > 0, "archive_command never failed while MinIO was down"
	})
	r.minio.Start(t)
	waitArchived(t, c, last, 3*time.Minute) // the archiver retries after up to 60s
	firstN, _ := wal.ParseName(first)
	lastN, _ := wal.ParseName(last)
	for n := firstN.SegNo(16 << 20); n <= lastN.SegNo(16<<20); n++ {
		name := wal.SegmentFileName(1, n, 16<<20)
		dest := filepath.Join(testenv.Dir(t), name)
		if _, stderr, code := r.runEnv([]string{"PITR_FETCH_PREFETCH=0"}, "wal-fetch", name, dest); code != 0 {
			t.Fatalf("segment %s missing after the outage: exit %d: %s", name, code, stderr)
		}
	}
}

// TestCLIUsage: bad input gets one line of error ending with the help to
// read, and exit 2;
// wal-fetch never answers 1 ("not archived") to bad input.
func TestCLIUsage(t *testing.T) {
	r := newRig(t, "local")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"wal-push"}, 2, "accepts 1 arg"},
		{[]string{"wal-push", "/etc/passwd"}, 2, "not a WAL file name"},
		{[]string{"wal-push", "a", "b"}, 2, "accepts 1 arg"},
		{[]string{"wal-fetch"}, exitFatal, "accepts 2 arg"},
		{[]string{"wal-fetch", "../../etc/passwd", "/tmp/x"}, exitFatal, "not a WAL file name"},
		{[]string{"no-such-command"}, 2, "unknown command"},
		{[]string{"wal-push", "--bogus", "x"}, 2, "unknown flag"},
		{[]string{"keygen"}, 2, "--output"},
	}
	for _, tt := range tests {
		_, stderr, code := r.run(tt.args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != tt.code || !strings.Contains(lines[0], tt.want) || !strings.HasPrefix(lines[0], "pitr: ") {
			t.Errorf("pitr %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
		hint := "(see 'pitr " + tt.args[0] + " --help')"
		if tt.args[0] == "no-such-command" {
			hint = "(see 'pitr --help')"
		}
		if len(lines) != 1 || !strings.HasSuffix(lines[0], hint) {
			t.Errorf("pitr %v: want one error line ending %s, got %q", tt.args, hint, stderr)
		}
	}
	_, stderr, code := r.runEnv([]string{"PITR_REPO=ftp://x"}, "wal-push", "/tmp/000000010000000000000001")
	if code != 2 || !strings.Contains(stderr, "repo") {
		t.Errorf("bad repo: exit %d, %q", code, stderr)
	}
}
