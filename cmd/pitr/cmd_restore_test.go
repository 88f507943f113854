package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tty is a reader that says it is a terminal, with the user's answer.
type tty struct{ *strings.Reader }

func (tty) IsTerminal() bool { return true }

func TestChooseArchiveMode(t *testing.T) {
	tests := []struct {
		name    string
		mode    string
		start   bool
		stdin   string
		term    bool
		off     bool
		say     string // on stdout, or in the error
		wantErr bool
	}{
		{"off", "off", true, "", false, true, "archive_mode = off", false},
		{"keep", "keep", true, "", false, false, "--archive-mode keep", false},
		{"no flag, no start: keep, and say so", "", false, "", false, false, "use --archive-mode off for a rehearsal", false},
		{"start without a terminal is refused", "", true, "y\n", false, false, "pass --archive-mode off for a rehearsal, or --archive-mode keep", true},
		{"start on a terminal, yes", "", true, "y\n", true, false, "answered yes", false},
		{"start on a terminal, default is no", "", true, "\n", true, false, "answered no", true},
		{"start on a terminal, eof is no", "", true, "", true, false, "answered no", true},
		{"bad value", "on", false, "", false, false, "want off or keep", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			e := &env{stdout: &out, stderr: &errOut, stdin: strings.NewReader(tt.stdin)}
			if tt.term {
				e.stdin = tty{strings.NewReader(tt.stdin)}
			}
			off, err := chooseArchiveMode(e, tt.mode, tt.start)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.say) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line with %q", err, tt.say)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if off != tt.off || !strings.Contains(out.String(), tt.say) {
				t.Fatalf("off = %v, stdout %q; want %v and %q", off, out.String(), tt.off, tt.say)
			}
			if strings.Count(out.String(), "\n") != 1 {
				t.Fatalf("want one line on stdout, got %q", out.String())
			}
		})
	}
}

// TestRestoreStartNeedsArchiveMode: refused before the repository is even
// opened, so nothing is written.
func TestRestoreStartNeedsArchiveMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgdata")
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out, stdin: strings.NewReader("")}
	err := runRestore(t.Context(), e, restoreFlags{to: "latest", pgdata: dir, start: true, timeline: "latest"})
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--archive-mode off") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("--pgdata created: %v", err)
	}
}
