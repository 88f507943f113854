package main

import (
	"strings"
	"testing"
)

// TestAppRestoreUsage: each bad command line is one clear line and exit 2,
// before the repository is read.
func TestAppRestoreUsage(t *testing.T) {
	cliEnv(t, "file://"+t.TempDir()+"/none")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"app", "restore", "chat"}, "app restore needs --root DIR (or --force to restore in place)"},
		{[]string{"app", "restore", "Chat!", "--root", "/x"}, `app name "Chat!"`},
		{[]string{"app", "restore", "chat", "--root", "/x", "--to", "yesterday"}, `--to "yesterday": want latest, an app point id`},
		{[]string{"app", "restore", "chat", "--root", "/x", "--keep-settings", "etc/app.conf"}, `--keep-settings "etc/app.conf": want an original absolute path`},
		{[]string{"app", "restore", "chat", "--root", "/x", "--archive-mode", "maybe"}, `--archive-mode "maybe": want off or keep`},
		{[]string{"app", "restore"}, "accepts 1 arg"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("pitr %v: exit %d, %q; want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	// A well-formed line where there is no repository: exit 1, and app
	// restore (a reader) creates none.
	code, _, stderr := runCLI(t, "app", "restore", "chat", "--root", t.TempDir(), "--to", "2026-11-22 14:00:00")
	if code != exitError || !strings.Contains(stderr, "no repository at ") {
		t.Errorf("empty repository: exit %d, %q", code, stderr)
	}
}
