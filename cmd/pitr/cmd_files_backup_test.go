package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// filesEnv sets up a local repository, a config with file sets media
// (of dir) and keys, and a cache directory; it returns the config's
// path and the repository directory.
func filesEnv(t *testing.T, dir, extra string) (cfgPath, repoDir string) {
	t.Helper()
	repoDir = filepath.Join(t.TempDir(), "repo")
	cliEnv(t, "file://"+repoDir)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfgPath = configFile(t, "files:\n  - name: media\n    paths: ["+dir+"]\n    exclude: ['*.tmp']\n  - name: docs\n    paths: ["+dir+"/sub]\n"+extra)
	return cfgPath, repoDir
}

func snapshotEntries(t *testing.T, repoDir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(filepath.Join(repoDir, catalog.SnapshotsPrefix), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == catalog.SnapshotEntryName {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestFilesBackupUsage(t *testing.T) {
	dir := t.TempDir()
	filesEnv(t, dir, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"files", "backup"}, "name a set (media, docs), or --all, or --set NAME and its paths"},
		{[]string{"files", "backup", "nope"}, `no file set "nope" in the config (sets: media, docs)`},
		{[]string{"files", "backup", "media", "docs"}, "one set at a time"},
		{[]string{"files", "backup", "--all", "media"}, "--all takes no set name"},
		{[]string{"files", "backup", "--set", "adhoc"}, "name the paths"},
		{[]string{"files", "backup", "--set", "adhoc", "--all", dir}, "exclude each other"},
		{[]string{"files", "backup", "media", "--kind", "secrets"}, "--kind and --exclude go with --set"},
		{[]string{"files", "backup", "media", "--exclude", "x"}, "--kind and --exclude go with --set"},
		{[]string{"files", "backup", "--bogus"}, "unknown flag"},
		{[]string{"files", "backup", "--set", "Bad Name", dir}, `--set "Bad Name": want lower-case`},
		{[]string{"files", "backup", "--set", "adhoc", "--kind", "media", dir}, `--kind "media": want uploads or secrets`},
		{[]string{"files", "backup", "--set", "adhoc", "relative/path"}, `path "relative/path" is not absolute`},
		{[]string{"files", "bogus"}, "unknown command"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want 2 and one line with %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestFilesBackupCommand(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"a.txt": "a", "sub/b.txt": "bb", "skip.tmp": "x"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath, repoDir := filesEnv(t, dir, "")
	code, stdout, stderr := runCLI(t, "files", "backup", "media")
	if code != exitOK || !strings.HasPrefix(stdout, "snapshot ") || !strings.Contains(stdout, " of media: 2 files, 3 B, 3 B new, ") {
		t.Fatalf("files backup media: exit %d, %q, %q", code, stdout, stderr)
	}
	keyPath := filepath.Join(filepath.Dir(cfgPath), "dedup.key")
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dedup key beside the config: %v, %v", fi, err)
	}
	code, stdout, _ = runCLI(t, "files", "backup", "--all")
	if code != exitOK || strings.Count(stdout, "\n") != 2 || !strings.Contains(stdout, " of docs: 1 files, 2 B, 0 B new") {
		t.Fatalf("files backup --all: exit %d, %q", code, stdout)
	}
	code, stdout, _ = runCLI(t, "files", "backup", "--set", "adhoc", "--exclude", "sub", dir)
	if code != exitOK || !strings.Contains(stdout, " of adhoc: 2 files, 2 B") {
		t.Fatalf("ad hoc: exit %d, %q", code, stdout)
	}
	if n := len(snapshotEntries(t, repoDir)); n != 4 {
		t.Errorf("%d snapshots listed, want 4", n)
	}
	// secrets are refused with encryption off (cliEnv's), in one line
	code, _, stderr = runCLI(t, "files", "backup", "--set", "keys", "--kind", "secrets", dir)
	if code != exitError || !strings.Contains(stderr, "encryption off") {
		t.Errorf("secrets unencrypted: exit %d, %q", code, stderr)
	}
	// another host's key is refused, naming the key file
	other := filepath.Join(t.TempDir(), "other.key")
	t.Setenv("PITR_FILES_DEDUP_KEY", other)
	code, _, stderr = runCLI(t, "files", "backup", "media")
	if code != exitError || !strings.Contains(stderr, other) || !strings.Contains(stderr, "copy the dedup key file") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("other key: exit %d, %q", code, stderr)
	}
}

func TestFilesBackupChangedExit3(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "growing.log")
	if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, repoDir := filesEnv(t, dir, "")
	filesAfterRead = func(path string, _ int) {
		if path == p {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				_, _ = f.WriteString("more\n")
				f.Close()
			}
		}
	}
	t.Cleanup(func() { filesAfterRead = nil })
	code, stdout, stderr := runCLI(t, "files", "backup", "media")
	if code != exitChanged || !strings.Contains(stdout, " of media: 1 files") || !strings.Contains(stderr, "changed") {
		t.Fatalf("exit %d, %q, %q; want 3 with the snapshot printed", code, stdout, stderr)
	}
	if n := len(snapshotEntries(t, repoDir)); n != 1 {
		t.Errorf("%d snapshots listed, want the flagged one", n)
	}
}

func TestDaemonRunsFileSets(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, repoDir := filesEnv(t, dir, "    schedule: '@every 1s'\nfiles_schedule: ''\ndaemon_stream: false\nbackup_schedule: ''\ndump_schedule: ''\nmetrics_addr: ''\nsocket: 'off'\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	var stderr string
	go func() { code, _, e := runCLIContext(ctx, "daemon"); stderr = e; done <- code }()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		select {
		case code := <-done:
			t.Fatalf("daemon exit %d: %s", code, stderr)
		default:
		}
		return len(snapshotEntries(t, repoDir)) >= 1, "a snapshot of docs (schedule @every 1s)"
	})
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("daemon exit %d: %s", code, stderr)
	}
	for _, p := range snapshotEntries(t, repoDir) {
		if !strings.Contains(p, "/docs/") {
			t.Errorf("%s: only docs has a schedule (files_schedule is empty)", p)
		}
	}
}

func runCLIContext(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr strings.Builder
	code := run(ctx, args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestFilesBackupStatCacheAndForceRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	filesEnv(t, dir, "")
	t.Setenv("PITR_LOG_LEVEL", "info")
	if code, stdout, stderr := runCLI(t, "files", "backup", "media"); code != exitOK {
		t.Fatalf("files backup media: exit %d, %q, %q", code, stdout, stderr)
	}
	caches, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "pitr", "*", "index", "stat-media.cache"))
	if len(caches) != 1 {
		t.Fatalf("stat caches: %q, want one beside the index cache", caches)
	}
	if fi, err := os.Stat(caches[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stat cache: %v, %v; want mode 0600", fi, err)
	}
	code, stdout, stderr := runCLI(t, "files", "backup", "media", "--force-read")
	if code != exitOK || !strings.Contains(stderr, `"files_reused":0,"files_read":1`) {
		t.Fatalf("files backup media --force-read: exit %d, %q, %q", code, stdout, stderr)
	}
}
