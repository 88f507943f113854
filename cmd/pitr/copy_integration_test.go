//go:build integration

package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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

// holdingProxy forwards to MinIO but holds every GET whose path contains
// hold until the test ends, so that a copy stays blocked midway for as
// long as the test needs.
func holdingProxy(t *testing.T, endpoint, hold string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, hold) {
			<-release
			http.Error(w, "released", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv.URL
}

// repoFilesUnder lists the regular files under dir, relative, skipping temporary
// ones (the local store's start with ".").
func repoFilesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil // not made yet
	}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// copySource fills the rig's repository: a table of marker rows, a base
// backup, more rows, their WAL archived.
func copySource(t *testing.T, r *rig) *scratch.Cluster {
	t.Helper()
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "a-before-backup", 100)
	r.mustRun(backupEnv(c), "backup")
	insert(t, c, "b-after-backup", 50)
	switchAndWait(t, c, time.Minute)
	return c
}

// TestCopyKilledThenRestoreFromCopy: pitr copy from MinIO to a local
// directory, killed with SIGKILL midway, leaves no entry there; a re-run
// completes it; a damaged object in the copy is found with --verify and
// copied again; with MinIO gone, a restore from the copy alone has every
// row.
func TestCopyKilledThenRestoreFromCopy(t *testing.T) {
	r := newRig(t, "minio")
	c := copySource(t, r)
	copyDir := filepath.Join(testenv.Dir(t), "offsite")
	to := "file://" + copyDir

	// The first part of the backup is held: the copy takes everything
	// else, then waits for it, so it is killed with WAL copied and no
	// entry (entries come last).
	proxy := holdingProxy(t, r.minio.Endpoint, "/backups/")
	cmd := exec.Command(r.pitr, "copy", "--to", to)
	cmd.Env = append(append(append(os.Environ(), r.env...), "PITR_AGE_IDENTITY_FILE="+r.identity), "PITR_S3_ENDPOINT="+proxy)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		for _, f := range repoFilesUnder(t, filepath.Join(copyDir)) {
			if strings.HasPrefix(f, "wal/") {
				return true, ""
			}
		}
		return false, "copy stored no WAL yet"
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed"
	killed := repoFilesUnder(t, copyDir)
	for _, f := range killed {
		if strings.HasSuffix(f, "/"+catalog.BackupEntryName) {
			t.Fatalf("killed copy left entry %s (stored %v)", f, killed)
		}
	}
	t.Logf("killed copy left %d objects", len(killed))

	out := r.mustRun(nil, "copy", "--to", to)
	t.Logf("re-run: %s", strings.TrimSpace(out))
	if !strings.HasPrefix(out, "copied ") || strings.Contains(out, "skipped 0 ") {
		t.Errorf("re-run skipped nothing: %s", out)
	}
	out = r.mustRun(nil, "copy", "--to", to, "--dry-run")
	if !strings.Contains(out, to+" is 0 objects (0 B) behind") {
		t.Errorf("dry run after the copy:\n%s", out)
	}

	// Damage a WAL segment of the copy, keeping its size.
	var seg string
	for _, f := range repoFilesUnder(t, copyDir) {
		if strings.HasPrefix(f, "wal/0") && !strings.Contains(f, ".backup.") {
			seg = f
			break
		}
	}
	good, err := os.ReadFile(filepath.Join(copyDir, seg))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(copyDir, seg), bytes.Repeat([]byte{0}, len(good)), 0o640); err != nil {
		t.Fatal(err)
	}
	out = r.mustRun(nil, "copy", "--to", to, "--verify")
	if !strings.Contains(out, "repaired 1,") {
		t.Errorf("copy --verify after damaging %s: %s", seg, out)
	}
	if got, err := os.ReadFile(filepath.Join(copyDir, seg)); err != nil || !bytes.Equal(got, good) {
		t.Errorf("%s not copied again (%v)", seg, err)
	}
	if q, _ := filepath.Glob(filepath.Join(copyDir, "quarantine", "*", seg)); len(q) != 1 {
		t.Errorf("damaged %s not kept under quarantine/: %v", seg, q)
	}

	// The source gone: restore from the copy alone.
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.minio.Stop(t)
	if err := scratch.ChownToPostgres(copyDir); err != nil { // restore_command runs as postgres
		t.Fatal(err)
	}
	r.env = append(r.env, "PITR_REPO="+to, "PITR_S3_ENDPOINT=")
	dir := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir)
	c2 := r.startRestored(dir)
	if got, want := phaseCounts(t, c2), "a-before-backup=100 b-after-backup=50"; got != want {
		t.Fatalf("restored from the copy: rows %q, want %q", got, want)
	}
}

// TestCopyLocalToMinIO: the offsite: section names a MinIO bucket with
// credentials of its own (PITR_OFFSITE_AWS_*; no AWS_* variables are
// set); pitr copy without --to fills it, --to fills a second, local
// copy; with the local source deleted, the two copies hold the same bytes
// and a restore from the MinIO copy alone has every row.
func TestCopyLocalToMinIO(t *testing.T) {
	r := newRig(t, "local")
	c := copySource(t, r)
	m := testenv.MinIO(t)
	bucket := m.NewBucket(t)
	cfgFile := filepath.Join(testenv.Dir(t), "pitr.yaml")
	cfg := "offsite:\n  repo: s3://" + bucket + "/offsite\n  s3_endpoint: " + m.Endpoint + "\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := []string{"PITR_CONFIG=" + cfgFile, "AWS_REGION=" + m.Region,
		"PITR_OFFSITE_AWS_ACCESS_KEY_ID=" + m.AccessKey, "PITR_OFFSITE_AWS_SECRET_ACCESS_KEY=" + m.SecretKey}
	out := r.mustRun(creds, "copy", "--dry-run")
	if !strings.Contains(out, "wal ") || strings.Contains(out, " is 0 objects") {
		t.Errorf("dry run before the copy:\n%s", out)
	}
	out = r.mustRun(creds, "copy")
	t.Logf("copy: %s", strings.TrimSpace(out))
	out = r.mustRun(creds, "copy", "--verify")
	if !strings.HasPrefix(out, "copied 0 objects") {
		t.Errorf("second copy: %s", out)
	}
	// Without the off-site credentials the bucket refuses.
	noCreds := append(creds[:2:2], "PITR_RETRY_TIMEOUT=1s", "AWS_EC2_METADATA_DISABLED=true")
	start := time.Now()
	_, stderr, code := r.runEnv(noCreds, "copy")
	t.Logf("copy without credentials: exit %d after %s: %s", code, time.Since(start).Round(time.Millisecond), lastLine(stderr))
	if code == 0 {
		t.Errorf("copy without credentials succeeded:\n%s", stderr)
	}

	// And file:// -> file://, a second copy.
	localCopy := "file://" + filepath.Join(testenv.Dir(t), "copy2")
	r.mustRun(nil, "copy", "--to", localCopy)

	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(r.repoDir); err != nil {
		t.Fatal(err)
	}
	r.env = append(append(r.env, "PITR_REPO=s3://"+bucket+"/offsite", "PITR_S3_ENDPOINT="+m.Endpoint), m.Env()...)
	// The two copies hold the same bytes: from the MinIO copy, the local
	// one lacks nothing and nothing there differs.
	out = r.mustRun(nil, "copy", "--to", localCopy, "--dry-run", "--verify")
	if !strings.Contains(out, localCopy+" is 0 objects (0 B) behind\n") {
		t.Errorf("MinIO copy against the local copy:\n%s", out)
	}
	dir := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir)
	c2 := r.startRestored(dir)
	if got, want := phaseCounts(t, c2), "a-before-backup=100 b-after-backup=50"; got != want {
		t.Fatalf("restored from the copy: rows %q, want %q", got, want)
	}
}
