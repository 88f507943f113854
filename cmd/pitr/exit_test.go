package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal/archive"
)

// TestExitCode: 0 ok, 1 error, 2 usage, and an exitCodeError's own code
// wherever it sits in the chain.
func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"plain", errors.New("boom"), exitError},
		{"wrapped plain", fmt.Errorf("backup: %w", errors.New("boom")), exitError},
		{"usage", errUsage, exitUsage},
		{"wrapped usage", fmt.Errorf("%w: --to: bad", errUsage), exitUsage},
		{"usage twice wrapped", fmt.Errorf("restore: %w", fmt.Errorf("%w: x", errUsage)), exitUsage},
		{"not found is an error elsewhere", fmt.Errorf("x: %w", archive.ErrNotFound), exitError},
		{"no repository", repo.NoRepository("file:///r", "missing"), exitError},
		{"exit code", exitCodeError{exitFatal, errors.New("x")}, exitFatal},
		{"exit code wins over usage", exitCodeError{exitFatal, fmt.Errorf("%w: x", errUsage)}, exitFatal},
		{"wrapped exit code", fmt.Errorf("outer: %w", exitCodeError{7, errors.New("x")}), 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// TestFetchExit: only a confirmed absence exits 1; every other failure of
// wal-fetch, usage errors included (a broken restore_command must not end
// recovery), exits above 125.
func TestFetchExit(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"not in the archive", fmt.Errorf("000000010000000000000009: %w", archive.ErrNotFound), exitNotFound},
		{"not in the archive, wrapped twice", fmt.Errorf("wal-fetch: %w", fmt.Errorf("x: %w", archive.ErrNotFound)), exitNotFound},
		{"no repository", repo.NoRepository("s3://b/p", "no pitr.json there"), exitFatal},
		{"no repository after a not-found", fmt.Errorf("wal-fetch x: %w", repo.NoRepository("s3://b/p", "gone")), exitFatal},
		{"wrong key", fmt.Errorf("decrypt: %w", crypto.ErrWrongKey), exitFatal},
		{"tampered", errors.New("x: stored object is corrupt or was tampered with: chacha20poly1305: message authentication failed"), exitFatal},
		{"unreachable", fmt.Errorf("list wal/: %w", errors.New("dial tcp: connection refused")), exitFatal},
		{"deadline", fmt.Errorf("wal-fetch gave up after retry_timeout (1m0s): %w", context.DeadlineExceeded), exitFatal},
		{"canceled", context.Canceled, exitFatal},
		{"usage", fmt.Errorf("%w: wal-fetch: bad name", errUsage), exitFatal},
		{"permanent storage error", fmt.Errorf("get x: %w", storage.ErrPermanent), exitFatal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mapped := fetchExit(tt.err)
			if got := exitCode(mapped); got != tt.want {
				t.Errorf("exit %d, want %d for %v", got, tt.want, tt.err)
			}
			if mapped.Error() != tt.err.Error() || !errors.Is(mapped, tt.err) {
				t.Errorf("fetchExit changed the error: %v", mapped)
			}
		})
	}
	if exitFatal <= 125 {
		t.Fatalf("exitFatal = %d: PostgreSQL promotes on anything up to 125", exitFatal)
	}
}

// cliEnv points the process environment at a local repository for run:
// no other PITR_* setting, no default config file, unencrypted, one
// attempt per call and no prefetch (it would start this test binary).
func cliEnv(t *testing.T, repo string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PITR_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	empty := filepath.Join(t.TempDir(), "pitr.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"PITR_CONFIG": empty, "PITR_REPO": repo, "PITR_ENCRYPTION": "none",
		"PITR_RETRY_TIMEOUT": "0", "PITR_FETCH_PREFETCH": "0", "PITR_PUSH_RESIDENT": "false", "PITR_LOG_FORMAT": "json", "PITR_LOG_LEVEL": "error",
	} {
		t.Setenv(k, v)
	}
}

// runCLI runs the command line in-process as main does and returns the
// exit status, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// stderrLine is the last line of s: the error run prints after any logs.
func stderrLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestRunEndToEnd drives the root command in-process on a local
// repository: the exit status, and the one line printed for an error.
func TestRunEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	repo := "file://" + dir
	cliEnv(t, repo)
	const name = "000000010000000000000003"
	path, want := walSegment(t, name)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")

	// Before the first push there is no repository: wal-fetch must stop
	// recovery, not end it.
	code, _, stderr := runCLI(t, "wal-fetch", name, dest)
	if code != exitFatal || !strings.HasPrefix(stderrLine(stderr), "pitr: no repository at "+repo) {
		t.Fatalf("wal-fetch before any push: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "wal-push", path); code != exitOK {
		t.Fatalf("wal-push: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "wal-fetch", name, dest); code != exitOK {
		t.Fatalf("wal-fetch: exit %d, stderr %q", code, stderr)
	}
	if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("wal-fetch wrote %d bytes (%v), want the %d pushed", len(got), err, len(want))
	}

	for _, tt := range []struct {
		name string
		args []string
		code int
		line string // the last line of stderr starts with this
		end  string // and ends with this
	}{
		{"missing segment", []string{"wal-fetch", "000000010000000000000009", dest}, exitNotFound,
			"pitr: 000000010000000000000009: not in the archive", ""},
		{"missing history", []string{"wal-fetch", "00000002.history", dest}, exitNotFound, "pitr: ", "not in the archive"},
		{"wal-fetch usage", []string{"wal-fetch", name}, exitFatal, "pitr: usage: wal-fetch:", "(see 'pitr wal-fetch --help')"},
		{"wal-fetch bad name", []string{"wal-fetch", "pg_wal/x", dest}, exitFatal, "pitr: usage: wal-fetch:", "(see 'pitr wal-fetch --help')"},
		{"wal-fetch bad config", []string{"--config", filepath.Join(dir, "none.yaml"), "wal-fetch", name, dest}, exitFatal, "pitr: usage: ", "(see 'pitr wal-fetch --help')"},
		{"wal-push usage", []string{"wal-push"}, exitUsage, "pitr: usage: wal-push:", "(see 'pitr wal-push --help')"},
		{"wal-push bad name", []string{"wal-push", filepath.Join(dir, "notwal")}, exitUsage, "pitr: usage: wal-push:", "(see 'pitr wal-push --help')"},
		{"unknown flag", []string{"list", "--bogus"}, exitUsage, "pitr: usage: unknown flag: --bogus", "(see 'pitr list --help')"},
		{"bad log level flag", []string{"--log-level", "loud", "list"}, exitUsage, `pitr: usage: log_level "loud"`, "(see 'pitr list --help')"},
		{"missing config file", []string{"--config", filepath.Join(dir, "none.yaml"), "list"}, exitUsage, "pitr: usage: ", "(see 'pitr list --help')"},
		{"show missing backup", []string{"show", "20261201T000000Z"}, exitError, "pitr: backup 20261201T000000Z: no such complete backup", ""},
		{"show bad id", []string{"show", "yesterday"}, exitUsage, `pitr: usage: "yesterday" is not a backup id`, "(see 'pitr show --help')"},
		{"restore bad target", []string{"restore", "--to", "soon", "--pgdata", filepath.Join(dir, "pg")}, exitUsage, "pitr: usage: --to:", "(see 'pitr restore --help')"},
		{"list on another place", []string{"--repo", repo + "-other", "list"}, exitError, "pitr: no repository at " + repo + "-other", ""},
		{"wal-fetch on another place", []string{"--repo", repo + "-other", "wal-fetch", name, dest}, exitFatal, "pitr: no repository at " + repo + "-other", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			line := stderrLine(stderr)
			if !strings.HasPrefix(line, tt.line) || !strings.HasSuffix(line, tt.end) {
				t.Errorf("stderr ends %q, want a line starting %q and ending %q", line, tt.line, tt.end)
			}
			if strings.Count(stderr, "pitr: ") != 1 {
				t.Errorf("want exactly one error line, stderr %q", stderr)
			}
			if stdout != "" && tt.code != exitOK && tt.name != "restore bad target" {
				t.Errorf("stdout %q on failure", stdout)
			}
		})
	}
	// Nothing above wrote into the other place or created it.
	if _, err := os.Stat(dir + "-other"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s-other: %v, want it absent", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, catalog.MarkerKey)); err != nil {
		t.Errorf("the repository lost its marker: %v", err)
	}

	// Success prints nothing on stderr at log level error, and list works.
	code, stdout, stderr := runCLI(t, "list", "--json")
	if code != exitOK || stderr != "" || !strings.Contains(stdout, `"backups": []`) {
		t.Errorf("list --json: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
