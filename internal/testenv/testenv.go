// Package testenv gives integration tests real servers: a MinIO and scratch
// PostgreSQL clusters, plus a built pitr binary and directories the
// postgres user can use. When a server binary is missing the test is
// skipped, or fails when PITR_TEST_REQUIRE=1, as the README's test command
// sets (see restic's internal/test/vars.go).
//
// Everything lives under os.TempDir() in directories named
// pitr-test-<pid>-*, removed by t.Cleanup; what a killed test binary leaves
// behind is removed by the next one that starts (see sweep).
package testenv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
)

// Require reports whether missing binaries fail tests instead of skipping
// them: PITR_TEST_REQUIRE=1.
func Require() bool { return os.Getenv("PITR_TEST_REQUIRE") == "1" }

// skipOrFail ends the test because the environment lacks something.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Require() {
		t.Fatal(msg + " (required: PITR_TEST_REQUIRE=1)")
	}
	t.Skip(msg + " (set PITR_TEST_REQUIRE=1 to fail instead)")
}

// Dir returns a new empty directory with mode 0755, owned by the postgres
// user when we are root, so the server and its archive_command can write
// there. It is removed when the test ends.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := mkdirTemp("dir")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A detached wal-prefetch may still be finishing a download into a
		// restored cluster's pg_wal: retry for a little while.
		var err error
		for i := 0; i < 50; i++ {
			if err = os.RemoveAll(dir); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("remove test dir: %v", err)
	})
	if err := scratch.ChownToPostgres(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

var sweepOnce sync.Once

// mkdirTemp makes a 0755 directory under os.TempDir() named after our pid,
// first sweeping those of test binaries that died.
func mkdirTemp(kind string) (string, error) {
	sweepOnce.Do(sweep)
	dir, err := os.MkdirTemp("", fmt.Sprintf("pitr-test-%d-%s-", os.Getpid(), kind))
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// sweep removes pitr-test-<pid>-* directories of processes that are gone:
// a test binary killed by -timeout runs no cleanups. Its servers die with
// it (parent-death signal), its directories stay until here.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pitr-test-*"))
	for _, dir := range dirs {
		rest := strings.TrimPrefix(filepath.Base(dir), "pitr-test-")
		pid, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '-'), 0)])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) || zombie(pid) {
			_ = os.RemoveAll(dir)
		}
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// Postgres starts a scratch cluster with settings added to its
// postgresql.conf and removes it when the test ends, printing the end of
// its server log if the test failed.
func Postgres(t testing.TB, settings map[string]string) *scratch.Cluster {
	t.Helper()
	return PostgresWith(t, scratch.Options{Settings: settings})
}

// PostgresWith is Postgres with all options, e.g. Env for an
// archive_command that reads its storage settings from the environment.
// opts.Dir defaults to a Dir(t).
func PostgresWith(t testing.TB, opts scratch.Options) *scratch.Cluster {
	t.Helper()
	RequirePostgres(t)
	if opts.Dir == "" {
		opts.Dir = Dir(t)
	}
	c, err := scratch.Init(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			DumpLog(t, c)
		}
		if err := c.Remove(); err != nil {
			t.Errorf("remove scratch cluster: %v", err)
		}
	})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

// RequirePostgres skips (or fails) the test unless PostgreSQL binaries can
// be found and, when we are root, a postgres user exists to run them.
func RequirePostgres(t testing.TB) {
	t.Helper()
	if _, err := scratch.FindBinDir("", ""); err != nil {
		skipOrFail(t, "%v", err)
	}
	if _, _, ok := scratch.PostgresUser(); os.Geteuid() == 0 && !ok {
		skipOrFail(t, "running as root without a postgres user to run PostgreSQL as")
	}
}

// DumpLog logs the last 50 lines of c's server log.
func DumpLog(t testing.TB, c *scratch.Cluster) {
	t.Helper()
	b, err := os.ReadFile(c.LogPath())
	if err != nil {
		t.Logf("server log: %v", err)
		return
	}
	t.Logf("last lines of %s:\n%s", c.LogPath(), scratch.LastLines(string(b), 50))
}

var pitrBinary struct {
	once sync.Once
	path string
	err  error
}

// PitrBinary builds ./cmd/pitr once per test binary and returns its path,
// in a 0755 directory the postgres user can execute from (archive_command).
func PitrBinary(t testing.TB) string {
	t.Helper()
	pitrBinary.once.Do(func() {
		pitrBinary.path, pitrBinary.err = buildPitr()
	})
	if pitrBinary.err != nil {
		t.Fatal(pitrBinary.err)
	}
	return pitrBinary.path
}

func buildPitr() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir, err := mkdirTemp("bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pitr")
	// go test puts its own toolchain first in PATH.
	args := []string{"build", "-o", bin}
	if os.Getenv("PITR_TEST_RACE") == "1" { // the binary under test with the race detector
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/pitr")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/pitr: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot walks up from the working directory (the test's package) to
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// fileSize is the size of path, 0 when it does not exist: where a server's
// start begins in its log.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince reports whether the log at path, from offset on, contains s in
// any case (MinIO says "already in use", redis-server "Address already in
// use").
func logSince(path string, offset int64, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<20))
	return err == nil && strings.Contains(strings.ToLower(string(b)), strings.ToLower(s))
}
