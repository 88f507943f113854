package main

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLoggerDurations: duration fields carry their unit in both formats,
// and an error logged as a field stays on one line.
func TestLoggerDurations(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLogger(&buf, "info", format)
			log.Info().Err(nil).Msg("nothing failed")
			if strings.Contains(buf.String(), "error") {
				t.Errorf("Err(nil) logged: %s", buf.String())
			}
			buf.Reset()
			log.Info().Dur("took", 529887310*time.Nanosecond).Dur("retry_in", 2*time.Second).
				Err(errors.New("start postgres: boom\nlast lines:\n\tDETAIL: x")).Msg("done")
			out := buf.String()
			for _, want := range []string{"529.88731ms", "2s"} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q: %s", want, out)
				}
			}
			if strings.Contains(out, "529.88731,") || strings.Contains(out, "529.88731 ") || strings.Contains(out, "took=529.88731\x1b") {
				t.Errorf("duration without a unit: %s", out)
			}
			if strings.Count(out, "\n") != 1 || strings.Contains(out, `\n`) || strings.Contains(out, `\t`) || strings.Contains(out, "\t") {
				t.Errorf("error not on one line: %q", out)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain",
		"start postgres: FATAL x\nlast lines of /l:\n2026 LOG: a\n\tDETAIL: b\n": "start postgres: FATAL x | last lines of /l: | 2026 LOG: a | DETAIL: b",
		"a\r\nb":      "a | b",
		"tab\tinside": "tab inside",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExitCodeUsageHint: a usage error prints one line naming the
// subcommand's help, and exits 2.
func TestExitCodeUsageHint(t *testing.T) {
	root := newRootCommand()
	var stderr bytes.Buffer
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"restore", "--bogus"}, "(see 'pitr restore --help')"},
		{[]string{"list", "extra"}, "(see 'pitr list --help')"},
		{[]string{"nonsense"}, "(see 'pitr --help')"},
	} {
		stderr.Reset()
		root.SetArgs(tc.args)
		ran, err := root.ExecuteC()
		if code := printError(&stderr, ran, err); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.args, code, exitUsage)
		}
		out := stderr.String()
		if !strings.HasPrefix(out, "pitr: ") || !strings.HasSuffix(out, tc.want+"\n") || strings.Count(out, "\n") != 1 {
			t.Errorf("%v: stderr %q, want one line ending %q", tc.args, out, tc.want)
		}
	}
	stderr.Reset()
	if code := printError(&stderr, nil, fmt.Errorf("restore: %w", errors.New("start postgres: x\n\tDETAIL: y"))); code != exitError ||
		stderr.String() != "pitr: restore: start postgres: x | DETAIL: y\n" {
		t.Errorf("plain error: exit %d, %q", code, stderr.String())
	}
}

func TestVersionString(t *testing.T) {
	info := func(v string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/pitr-dev/pitr", Version: v}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	rev := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name, set string
		info      *debug.BuildInfo
		version   string
		full      string
	}{
		{"module version and revision", "dev", info("v1.4.0", "vcs.revision", rev, "vcs.modified", "false"), "v1.4.0", "v1.4.0 (revision 0123456789ab)"},
		{"modified tree", "dev", info("v0.0.0-20261201094800-0123456789ab+dirty", "vcs.revision", rev, "vcs.modified", "true"),
			"v0.0.0-20261201094800-0123456789ab+dirty", "v0.0.0-20261201094800-0123456789ab+dirty (revision 0123456789ab, modified)"},
		{"devel without vcs", "dev", info("(devel)"), "dev", "dev"},
		{"ldflags win", "1.2.3", info("v1.4.0", "vcs.revision", rev), "1.2.3", "1.2.3 (revision 0123456789ab)"},
		{"no build info", "dev", nil, "dev", "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, full := versionFrom(tc.set, tc.info)
			if v != tc.version || full != tc.full {
				t.Errorf("versionFrom = %q, %q; want %q, %q", v, full, tc.version, tc.full)
			}
		})
	}
}

// TestVersionBinary builds pitr twice: plain, --version names the VCS
// revision instead of "dev"; with -ldflags -X main.version, that wins.
func TestVersionBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skip("not in a git checkout")
	}
	dir := t.TempDir()
	build := func(bin string, args ...string) string {
		cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, args...), ".")...)
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true") // a go env file may turn it off
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v: %s", err, out)
		}
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	plain := filepath.Join(dir, "pitr")
	got := build(plain)
	stamped := true
	if info, err := buildinfo.ReadFile(plain); err != nil || !slices.ContainsFunc(info.Settings, func(s debug.BuildSetting) bool { return s.Key == "vcs.revision" }) {
		// The go command does not stamp builds in a git worktree (.git is
		// a file there); a clone is stamped.
		stamped = false
		t.Logf("go build recorded no VCS revision (git worktree?): %q", got)
	}
	if want := "(revision " + string(rev[:12]); stamped && (!strings.Contains(got, want) || strings.Contains(got, "version dev")) {
		t.Errorf("--version = %q, want it to contain %q", got, want)
	}
	got = build(filepath.Join(dir, "pitr-x"), "-ldflags", "-X main.version=9.9.9")
	if want := "pitr version 9.9.9"; !strings.HasPrefix(got, want) || stamped && !strings.Contains(got, string(rev[:12])) {
		t.Errorf("with -X main.version: --version = %q, want %q and the revision", got, want)
	}
}
