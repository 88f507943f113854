package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// The logs in testdata/server are PostgreSQL 15.18's, of a recovery to a
// time that promoted, and of one to a time after the archive's end.
func TestServerLog(t *testing.T) {
	for _, tc := range []struct {
		file     string
		fatal    string
		lastXact time.Time
	}{
		{"promoted.log", "", time.Date(2026, 11, 22, 5, 7, 30, 333938000, time.UTC)},
		{"fatal.log", "FATAL:  recovery ended before configured recovery target was reached",
			time.Date(2026, 11, 22, 5, 7, 30, 333938000, time.UTC)},
	} {
		l := &serverLog{path: filepath.Join("testdata/server", tc.file)}
		l.update()
		if l.fatal != tc.fatal {
			t.Errorf("%s: fatal = %q, want %q", tc.file, l.fatal, tc.fatal)
		}
		if !l.lastXact.Equal(tc.lastXact) {
			t.Errorf("%s: last transaction at %v, want %v", tc.file, l.lastXact, tc.lastXact)
		}
		if len(l.lines) != tailLines || l.paused || l.shutdownAtTarget {
			t.Errorf("%s: %d lines, paused %v, shutdown %v", tc.file, len(l.lines), l.paused, l.shutdownAtTarget)
		}
	}
}

// serverLog reads what is appended, completing lines across reads.
func TestServerLogFollows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.log")
	l := &serverLog{path: path}
	l.update() // missing: nothing
	write := func(s string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write("2026-11-22 05:07:41.957 UTC [6213] LOG:  recovery stopping after reaching consistency\n2026-11-22 05:07:41.957 UTC [6213] LOG:  pausing at ")
	l.update()
	if l.paused || len(l.lines) != 1 {
		t.Fatalf("partial line scanned: %q", l.lines)
	}
	write("the end of recovery\n2026-11-22 05:07:41.957 UTC [6213] HINT:  Execute pg_wal_replay_resume() to promote.\n")
	l.update()
	if !l.paused || len(l.lines) != 3 {
		t.Errorf("paused %v, lines %q", l.paused, l.lines)
	}
	write("2026-11-22 06:07:30.5 CET [1] LOG:  last completed transaction was at log time 2026-11-22 06:07:30.5+01\n" +
		"x PANIC:  could not locate a valid checkpoint record\n" +
		"2026-11-22 05:07:41.957 UTC [9] FATAL:  the database system is not yet accepting connections\n")
	l.update()
	if want := time.Date(2026, 11, 22, 5, 7, 30, 500000000, time.UTC); !l.lastXact.Equal(want) {
		t.Errorf("last transaction at %v, want %v", l.lastXact, want)
	}
	if l.fatal != "PANIC:  could not locate a valid checkpoint record" {
		t.Errorf("fatal = %q", l.fatal)
	}
}

func TestLastSwitch(t *testing.T) {
	for _, tc := range []struct {
		history, reason string
		lsn             pglogrepl.LSN
	}{
		{string(mustRead(t, "testdata/server/00000002.history")), "before 2026-11-22 05:07:31.375573+00", 0x4000000},
		{"1\t0/4000000\tno recovery target specified\n\n2\t0/50000A0\tat restore point \"x y\"\n", `at restore point "x y"`, 0x50000a0},
		{"# comment\n1\t0/3000000\n", "", 0x3000000},
		{"", "", 0},
	} {
		lsn, reason := lastSwitch([]byte(tc.history))
		if lsn != tc.lsn || reason != tc.reason {
			t.Errorf("lastSwitch(%q) = %s, %q; want %s, %q", tc.history, lsn, reason, tc.lsn, tc.reason)
		}
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote(`/tmp/it's dir`); got != `'/tmp/it'\''s dir'` {
		t.Errorf("shellQuote = %s", got)
	}
}

func TestStartRefusesRootOwnedDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root switches to the data directory's owner")
	}
	_, err := Start(t.Context(), StartOptions{DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "data directory is owned by root; chown it to the postgres user") {
		t.Errorf("Start = %v", err)
	}
}
