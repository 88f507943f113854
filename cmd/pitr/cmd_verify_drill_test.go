package main

import (
	"strings"
	"testing"
)

// Bad drill flags are usage errors, found before the repository is opened.
func TestDrillUsage(t *testing.T) {
	t.Setenv("PITR_REPO", "file://"+t.TempDir())
	t.Setenv("PITR_CONFIG", "/dev/null")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--restore-drill", "--check", "SELECT 1"}, `--check "SELECT 1": want DB:SQL`},
		{[]string{"verify", "--restore-drill", "--check", "app:"}, `--check "app:": want DB:SQL`},
		{[]string{"verify", "--restore-drill", "--to", "yesterday"}, "--to: "},
		{[]string{"verify", "--to", "lsn:nonsense"}, "--to: "},
		{[]string{"verify", "--restore-drill", "--timeline", "x"}, "--timeline: "},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit 2 and %q", tc.args, code, stderr, stdout, tc.want)
		}
	}
}
