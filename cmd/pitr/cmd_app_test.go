package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
)

// TestAppCommands drives pitr app in-process on a local repository with
// an app of one file set (no PostgreSQL): backup, list, show, and the
// usage errors.
func TestAppCommands(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "after-ran")
	filesEnv(t, dir, `apps:
  - name: site
    files: [media]
    hooks:
      after:
        - name: mark
          command: [touch, `+marker+`]
    versions:
      greeting: [echo, hello]
  - name: broken
    files: [docs]
    hooks:
      before:
        - name: fails
          command: ["false"]
`)
	code, stdout, stderr := runCLI(t, "app", "backup", "site")
	if code != exitOK || !strings.HasPrefix(stdout, "app point site/") || !strings.Contains(stdout, "1 file snapshots, 0 dumps") {
		t.Fatalf("app backup site: exit %d, %q, %q", code, stdout, stderr)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("after hook: %v", err)
	}
	code, stdout, stderr = runCLI(t, "app", "list", "--json")
	var listed struct{ Apps []*catalog.App }
	if err := json.Unmarshal([]byte(stdout), &listed); code != exitOK || err != nil || len(listed.Apps) != 1 {
		t.Fatalf("app list --json: exit %d, %v, %q, %q", code, err, stdout, stderr)
	}
	p := listed.Apps[0]
	if p.RestorePoint != nil || len(p.Snapshots) != 1 || p.Snapshots[0].Set != "media" || p.Versions["greeting"] != "hello" || p.Versions["postgresql"] != "" {
		t.Errorf("app point %+v", p)
	}
	code, stdout, _ = runCLI(t, "app", "show", p.ID)
	for _, want := range []string{"app point site/" + p.ID, "restore point: none", "  media  " + p.Snapshots[0].ID, "greeting: hello", "after mark: exit 0"} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("app show: exit %d, lacks %q:\n%s", code, want, stdout)
		}
	}

	// A failing before hook: exit 1, one line, nothing new listed.
	code, _, stderr = runCLI(t, "app", "backup", "--all")
	if code != exitError || stderrLine(stderr) != "pitr: app backup broken: before hook fails: exit status 1" {
		t.Errorf("app backup --all with a failing hook: exit %d, %q", code, stderrLine(stderr))
	}
	code, stdout, _ = runCLI(t, "app", "list")
	if code != exitOK || strings.Count(stdout, "\nsite ") != 2 || strings.Contains(stdout, "broken") {
		t.Errorf("app list after --all: exit %d\n%s", code, stdout)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"app", "backup"}, exitUsage, "app backup: name an application (site, broken), or --all"},
		{[]string{"app", "backup", "shop"}, exitUsage, `app backup: no application "shop" in the config (apps: site, broken)`},
		{[]string{"app", "backup", "site", "--all"}, exitUsage, "app backup --all takes no name"},
		{[]string{"app", "show", "nosuch/20261201T000000Z"}, exitError, "app point 20261201T000000Z of nosuch: no such complete app point"},
		{[]string{"app", "show", "20261201T000000Z"}, exitError, "app point 20261201T000000Z: no such complete app point (see pitr app list)"},
		{[]string{"app", "list", "--app", "Bad"}, exitUsage, `app list --app "Bad": want lower-case letters, digits, _ and -`},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderrLine(stderr), tc.want) {
			t.Errorf("%v: exit %d, %q; want %d, %q", tc.args, code, stderrLine(stderr), tc.code, tc.want)
		}
	}
	// A bad apps: section is a usage error naming the key.
	configFile(t, "files:\n  - name: media\n    paths: ["+dir+"]\napps:\n  - name: site\n    files: [uploads]\n")
	if code, _, stderr := runCLI(t, "app", "list"); code != exitUsage || !strings.Contains(stderrLine(stderr), `apps[0].files: "uploads" is not a file set of files:`) {
		t.Errorf("bad apps: exit %d, %q", code, stderrLine(stderr))
	}
}
