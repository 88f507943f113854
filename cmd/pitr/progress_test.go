package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestProgressNotOnPipe: long commands run in-process with buffers for
// output draw no bar, console logs or not: no carriage return, no
// line-erasing escape, no bar characters, no rate.
func TestProgressNotOnPipe(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"a.bin": 3 << 20, "sub/b.bin": 100 << 10} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(size)}, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	filesEnv(t, dir, "")
	for _, format := range []string{"console", "auto", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Setenv("PITR_LOG_FORMAT", format)
			t.Setenv("PITR_LOG_LEVEL", "info")
			for _, args := range [][]string{
				{"files", "backup", "media"},
				{"files", "restore", "--set", "media", "--target", t.TempDir()},
				{"copy", "--to", "file://" + filepath.Join(t.TempDir(), "copy")},
			} {
				code, stdout, stderr := runCLI(t, args...)
				if code != exitOK {
					t.Fatalf("%v: exit %d, %q", args, code, stderr)
				}
				if out := stdout + stderr; strings.ContainsAny(out, "\r█") || strings.Contains(out, "\x1b[K") || strings.Contains(out, "MiB/s") {
					t.Errorf("%v drew a progress bar off a terminal:\nstdout %q\nstderr %q", args, stdout, stderr)
				}
			}
		})
	}
}

// TestNewMeter: a bar only on a terminal, and not with JSON logs.
func TestNewMeter(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	pty := openPTY(t)
	for _, tt := range []struct {
		name   string
		stderr *os.File
		format string
		bar    bool
	}{
		{"pipe, console", pw, "console", false},
		{"pipe, auto", pw, "auto", false},
		{"terminal, json", pty, "json", false},
		{"terminal, auto", pty, "auto", true},
		{"terminal, console", pty, "console", true},
	} {
		e := testEnv("file:///unused")
		e.stderr, e.cfg.LogFormat = tt.stderr, tt.format
		m := newMeter(e, "restore", 1<<20)
		if (m != nil) != tt.bar {
			t.Errorf("%s: newMeter = %v, want a bar: %v", tt.name, m, tt.bar)
		}
		if m != nil {
			m.Add(1 << 19)
			m.Done()
			m.Done()
		}
	}
	if n := barsDrawn.Load(); n != 0 {
		t.Errorf("%d bars still counted as drawn after Done", n)
	}
}

// TestBarOnTerminal: on a terminal the bar shows label, bytes and rate;
// a console log line written while it is drawn first erases its line.
func TestBarOnTerminal(t *testing.T) {
	master, slave := openPTYPair(t)
	e := testEnv("file:///unused")
	e.stderr, e.cfg.LogFormat = slave, "auto"
	log := newLogger(slave, "info", "auto")
	m := newMeter(e, "restore", 4<<20)
	m.Add(2 << 20)
	log.Info().Msg("halfway")
	m.Add(2 << 20)
	m.Done()
	log.Info().Msg("after")
	got := readPTY(t, master, "after")
	if !strings.Contains(got, "restore") || !strings.Contains(got, "MiB") {
		t.Errorf("terminal shows no bar with the label and bytes: %q", got)
	}
	if !strings.Contains(got, "\r\x1b[K") || !strings.Contains(got, "halfway") {
		t.Errorf("the log line written under the bar does not erase it first: %q", got)
	}
	i := strings.Index(got, "after")
	if line := got[strings.LastIndex(got[:i], "\n")+1 : i]; strings.Contains(line, "\x1b[K") {
		t.Errorf("a log line after Done still erases a bar: %q", line)
	}
	t.Logf("terminal: %q", got)
}

// openPTY returns the terminal side of a new pseudo-terminal.
func openPTY(t *testing.T) *os.File {
	_, slave := openPTYPair(t)
	return slave
}

// openPTYPair opens a pseudo-terminal (/dev/ptmx), or skips where there
// is none.
func openPTYPair(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// readPTY reads what the terminal shows until want appears.
func readPTY(t *testing.T, master *os.File, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		if err := master.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := master.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read the terminal: %v (so far %q)", err, got)
		}
	}
	return string(got)
}
