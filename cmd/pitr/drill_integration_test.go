//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// drillArgs is the command line of a restore drill.
func drillArgs(extra ...string) []string {
	return append([]string{"verify", "--restore-drill"}, extra...)
}

// bucketKeys lists every object of a MinIO bucket.
func bucketKeys(t *testing.T, m *testenv.MinIOServer, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(m.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// newKeys returns the keys of after that are not in before.
func newKeys(before, after []string) []string {
	var out []string
	for _, k := range after {
		if !slices.Contains(before, k) {
			out = append(out, k)
		}
	}
	return out
}

// TestRestoreDrill is issue 11's drill story on MinIO: a drill that passes
// (amcheck on every database, postgres and template1; SQL checks over the
// restored rows; a file set restored and counted), one that fails on a
// check that finds nothing (exit 1 naming it), one to --to TIME, and one
// interrupted; each leaves only its report in the repository (no WAL, no
// timeline history; the interrupted one none) and nothing in the scratch
// area.
func TestRestoreDrill(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(t.Context(), `INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 50) g`); err != nil {
		t.Fatal(err)
	}
	// The backup carries a postgresql.conf naming production's data
	// directory and an external pid file (production, started with -D,
	// loaded neither): the drill's server must use neither.
	prodPID := filepath.Join(testenv.Dir(t), "production.pid")
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "data_directory = '%s'\nexternal_pid_file = '%s'\n", c.DataDir, prodPID)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r.mustRun(backupEnv(c), "backup")
	T, err := c.QueryString(t.Context(), `SELECT clock_timestamp()::text`)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(t.Context(), `INSERT INTO notes (body) VALUES ('after the backup')`); err != nil {
		t.Fatal(err)
	}
	switchAndWait(t, c, time.Minute)

	// A file set with a hard link, and a config with the drill's scratch
	// area and a check of its own.
	dir := testenv.Dir(t)
	uploads := filepath.Join(dir, "uploads")
	for name, body := range map[string]string{"a.txt": "hello", "sub/b.bin": strings.Repeat("x", 70000)} {
		writeTreeFile(t, filepath.Join(uploads, name), []byte(body), 0o644)
	}
	if err := os.Link(filepath.Join(uploads, "a.txt"), filepath.Join(uploads, "sub", "a-again.txt")); err != nil {
		t.Fatal(err)
	}
	drills := filepath.Join(dir, "drills")
	if err := os.Mkdir(drills, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := scratch.ChownToPostgres(drills); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "pitr.yaml")
	if err := os.WriteFile(cfg, []byte(`files:
  - name: uploads
    paths: [`+uploads+`]
drill:
  dir: `+drills+`
  checks:
    - db: postgres
      sql: SELECT count(*) FROM notes WHERE body = 'after the backup'
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r.mustRun(nil, "--config", cfg, "files", "backup", "uploads")

	before := bucketKeys(t, r.minio, r.bucket)
	out := r.mustRun(nil, append([]string{"--config", cfg}, drillArgs("--check", "postgres:SELECT count(*) FROM notes")...)...)
	t.Logf("drill:\n%s", out)
	for _, want := range []string{"drill passed: backup ", "(RTO); amcheck ok on 2 databases; 2 checks ok; 1 file set restored and matching"} {
		if !strings.Contains(out, want) {
			t.Errorf("drill output lacks %q:\n%s", want, out)
		}
	}
	assertOnlyReports(t, newKeys(before, bucketKeys(t, r.minio, r.bucket)), 1)
	assertEmptyDir(t, drills)
	assertAbsent(t, prodPID)

	// A check that finds nothing fails the drill, naming the check.
	before = bucketKeys(t, r.minio, r.bucket)
	stdout, stderr, code := r.runEnv(nil, append([]string{"--config", cfg}, drillArgs("--check", "postgres:SELECT count(*) FROM notes WHERE false", "--json")...)...)
	const want = "check postgres: SELECT count(*) FROM notes WHERE false: returned 0, want at least 1"
	if code != 1 || !strings.Contains(stderr, "restore drill failed: "+want) {
		t.Fatalf("failing drill: exit %d, stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	var rep catalog.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("drill --json: %v:\n%s", err, stdout)
	}
	if rep.OK || !slices.Equal(rep.Problems, []string{want}) || rep.Kind != catalog.ReportDrill || rep.Backup == "" || rep.RTOSeconds <= 0 || rep.Reached == nil {
		t.Errorf("failed drill's report: %+v", rep)
	}
	assertOnlyReports(t, newKeys(before, bucketKeys(t, r.minio, r.bucket)), 1)
	assertEmptyDir(t, drills)

	// --to T: recovery stops before the row the config's check looks for.
	stdout, stderr, code = r.runEnv(nil, append([]string{"--config", cfg}, drillArgs("--to", T, "--check", "postgres:SELECT count(*) FROM notes")...)...)
	const late = "check postgres: SELECT count(*) FROM notes WHERE body = 'after the backup': returned 0, want at least 1"
	if code != 1 || !strings.Contains(stderr, "restore drill failed: "+late) || strings.Count(stdout, "\n  ") != 1 {
		t.Fatalf("drill --to %s: exit %d, stderr:\n%s\nstdout:\n%s", T, code, stderr, stdout)
	}

	// A role the cluster does not have fails at once, naming it.
	cfgRole := filepath.Join(dir, "pitr-role.yaml")
	if err := os.WriteFile(cfgRole, []byte("drill:\n  dir: "+drills+"\n  user: nosuchrole\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = r.runEnv(nil, append([]string{"--config", cfgRole}, drillArgs()...)...)
	if code != 1 || !strings.Contains(stderr, `connect to the restored server as nosuchrole: `) || !strings.Contains(stderr, `role "nosuchrole" does not exist`) {
		t.Fatalf("drill as a missing role: exit %d, stderr:\n%s", code, stderr)
	}
	assertEmptyDir(t, drills)

	// Interrupted once its server runs: the server stops, the scratch
	// directory goes, no report is saved.
	before = bucketKeys(t, r.minio, r.bucket)
	cmd := exec.Command(r.pitr, append([]string{"--config", cfg}, drillArgs()...)...)
	cmd.Env = append(append(os.Environ(), r.env...), "PITR_AGE_IDENTITY_FILE="+r.identity)
	var errBuf lockedBuffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		pids, _ := filepath.Glob(filepath.Join(drills, "pitr-drill-*", "pgdata", "postmaster.pid"))
		if len(pids) == 1 {
			if b, err := os.ReadFile(pids[0]); err == nil {
				_, _ = fmt.Sscan(string(b), &pid)
			}
		}
		return pid > 0, "no drill server running yet"
	})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if err == nil || !strings.Contains(errBuf.String(), "restore drill interrupted") {
		t.Errorf("interrupted drill: %v, stderr:\n%s", err, errBuf.String())
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("the interrupted drill's server (pid %d) still runs", pid)
	}
	assertEmptyDir(t, drills)
	assertOnlyReports(t, newKeys(before, bucketKeys(t, r.minio, r.bucket)), 0)
}

// assertOnlyReports fails unless the new keys are n drill reports: a drill
// stores no WAL and no timeline history.
func assertOnlyReports(t *testing.T, added []string, n int) {
	t.Helper()
	var reports int
	for _, k := range added {
		if strings.HasPrefix(k, "db1/"+catalog.ReportKindPrefix(catalog.ReportDrill)) {
			reports++
			continue
		}
		t.Errorf("a drill stored %s in the repository", k)
	}
	if reports != n {
		t.Errorf("drill reports stored: %d, want %d (new keys %q)", reports, n, added)
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("drill left %s in its scratch area", filepath.Join(dir, e.Name()))
	}
}

// TestDaemonDrill: pitr daemon runs a drill on drill.schedule and exports
// its result; without the identity it schedules none and says why.
func TestDaemonDrill(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE notes AS SELECT g AS id FROM generate_series(1, 10) g`); err != nil {
		t.Fatal(err)
	}
	r.mustRun(backupEnv(c), "backup")
	port, err := scratch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(testenv.Dir(t), "pitr.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("drill:\n  schedule: %q\n  checks:\n    - {db: postgres, sql: SELECT count(*) FROM notes, min: 10}\n",
		cronAt(time.Now().Add(3*time.Second)))), 0o644); err != nil {
		t.Fatal(err)
	}
	daemon := func(identity bool) (*exec.Cmd, *lockedBuffer) {
		cmd := exec.Command(r.pitr, "--config", cfg, "daemon")
		cmd.Env = append(append(os.Environ(), r.env...), "PITR_DAEMON_STREAM=false", "PITR_BACKUP_SCHEDULE=", "PITR_DUMP_SCHEDULE=",
			"PITR_FILES_SCHEDULE=", fmt.Sprintf("PITR_METRICS_ADDR=127.0.0.1:%d", port))
		if identity {
			cmd.Env = append(cmd.Env, "PITR_AGE_IDENTITY_FILE="+r.identity)
		}
		log := &lockedBuffer{}
		cmd.Stderr = log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill() // it may have exited already
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("daemon log:\n%s", log.String())
			}
		})
		return cmd, log
	}
	stop := func(cmd *exec.Cmd) {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("daemon after SIGTERM: %v", err)
		}
	}

	cmd, log := daemon(false)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(log.String(), "no drills scheduled"), "no warning about the missing identity"
	})
	stop(cmd)

	cmd, _ = daemon(true)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var body string
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		_, body, _ = tryGet(base + "/metrics")
		return metricValue(body, "pitr_drill_last_success_timestamp_seconds") > 0, "no drill passed yet; metrics:\n" + grepLines(body, "pitr_drill", "pitr_job")
	})
	if rto := metricValue(body, "pitr_drill_last_rto_seconds"); rto <= 0 || metricValue(body, "pitr_drill_failures_total") != 0 ||
		metricValue(body, `pitr_job_runs_total{job="drill"}`) != 1 {
		t.Errorf("drill metrics:\n%s", grepLines(body, "pitr_drill", "pitr_job"))
	}
	stop(cmd)
	if reports, _ := filepath.Glob(filepath.Join(r.repoDir, "reports", "drill", "*.json")); len(reports) != 1 {
		t.Errorf("drill reports %q, want one", reports)
	}
}
