//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// rehearse runs the README's rehearsal: a restore beside the running
// production server, started on its own port. It returns a handle on the
// running copy; the caller stops it.
func (r *rig) rehearse(to string, extra ...string) (*scratch.Cluster, string) {
	r.t.Helper()
	port, err := scratch.FreePort()
	if err != nil {
		r.t.Fatal(err)
	}
	dir := restoredDir(r.t)
	args := append([]string{"restore", "--to", to, "--pgdata", dir, "--start", "--port", strconv.Itoa(port)}, extra...)
	out := r.mustRun(nil, args...)
	h := scratch.Open(scratch.Options{Dir: testenv.Dir(r.t), Port: port}, dir)
	r.t.Cleanup(func() { // r.t.Context() is done by now
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			r.t.Errorf("stop rehearsal server: %v", err)
		}
	})
	return h, out
}

// rowsByKind counts the marker rows of production and of rehearsals.
func rowsByKind(t *testing.T, c *scratch.Cluster) (prod, rehearsal int64) {
	t.Helper()
	prod, err := c.QueryInt(t.Context(), `SELECT count(*) FROM marker WHERE phase LIKE 'prod%'`)
	if err != nil {
		t.Fatal(err)
	}
	rehearsal, err = c.QueryInt(t.Context(), `SELECT count(*) FROM marker WHERE phase LIKE 'rehearsal%'`)
	if err != nil {
		t.Fatal(err)
	}
	return prod, rehearsal
}

func (r *rig) timelines() []listTimeline {
	r.t.Helper()
	var lo struct {
		Timelines []listTimeline `json:"timelines"`
	}
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		r.t.Fatal(err)
	}
	return lo.Timelines
}

// TestRehearsalRestores is issue 8's story: three rehearsals beside the
// running production server, each started with --archive-mode keep (the
// worst case: each archives its new timeline into production's
// repository), production writing more after each. Then restore --to
// latest is production's state, --timeline selects a rehearsal's history,
// and a production backup taken after the rehearsals restores.
func TestRehearsalRestores(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "prod-0", 10)
	r.mustRun(backupEnv(c), "backup")
	var prodRows int64 = 10
	for i := 1; i <= 3; i++ {
		insert(t, c, fmt.Sprintf("prod-%d", i), 10)
		T, err := c.QueryString(t.Context(), `SELECT clock_timestamp()::text`)
		if err != nil {
			t.Fatal(err)
		}
		insert(t, c, fmt.Sprintf("prod-%d-after-T", i), 3)
		prodRows += 13
		switchAndWait(t, c, time.Minute)

		h, out := r.rehearse(T, "--archive-mode", "keep")
		t.Logf("rehearsal %d:\n%s", i, out)
		if !strings.Contains(out, "recovery follows timeline 1 ") {
			t.Fatalf("rehearsal %d does not follow production's timeline:\n%s", i, out)
		}
		if p, reh := rowsByKind(t, h); p != prodRows-3 || reh != 0 {
			t.Fatalf("rehearsal %d restored %d production and %d rehearsal rows, want %d and 0", i, p, reh, prodRows-3)
		}
		insert(t, h, fmt.Sprintf("rehearsal-%d", i), 5)
		if i == 1 {
			// Someone even backs up the rehearsal: that backup (on timeline
			// 2) is newer than production's, yet must not be chosen for
			// production's latest.
			r.mustRun(backupEnv(h), "backup")
		}
		switchAndWait(t, h, time.Minute) // archived into production's repository
		if err := h.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		insert(t, c, fmt.Sprintf("prod-%d-after-rehearsal", i), 2)
		prodRows += 2
		switchAndWait(t, c, time.Minute)
	}

	tls := r.timelines()
	if len(tls) != 4 {
		t.Fatalf("timelines after three rehearsals: %+v", tls)
	}
	for _, tl := range tls[1:] {
		if tl.Parent != 1 || !tl.BranchedFromRestore || tl.WALEndSegment == "" {
			t.Errorf("timeline %d: %+v, want a restore branched from 1 with archived WAL", tl.Timeline, tl)
		}
	}

	// list's windows follow the timeline restore follows, production's.
	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	if lo.WindowsTimeline != 1 || len(lo.Windows) == 0 {
		t.Fatalf("list after three rehearsals: windows %v on timeline %d, want windows on timeline 1", lo.Windows, lo.WindowsTimeline)
	}

	// Production's latest: every production row, none of a rehearsal's.
	dir := restoredDir(t)
	out := r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir, "--archive-mode", "off")
	t.Logf("restore --to latest:\n%s", out)
	if !strings.Contains(out, "recovery follows timeline 1 ") || !strings.Contains(out, "can reach 4 timelines") {
		t.Fatalf("restore --to latest does not name its choice and the alternatives:\n%s", out)
	}
	c2 := r.startRestored(dir)
	if p, reh := rowsByKind(t, c2); p != prodRows || reh != 0 {
		t.Fatalf("restore --to latest: %d production and %d rehearsal rows, want %d and 0", p, reh, prodRows)
	}
	if err := c2.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	// --timeline 2 is the first rehearsal's history.
	dir = restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--timeline", "2", "--pgdata", dir, "--archive-mode", "off")
	c3 := r.startRestored(dir)
	if n, _ := c3.QueryInt(t.Context(), `SELECT count(*) FROM marker WHERE phase = 'rehearsal-1'`); n != 5 {
		t.Fatalf("--timeline 2: %d rows of rehearsal 1, want 5", n)
	}
	if n, _ := c3.QueryInt(t.Context(), `SELECT count(*) FROM marker WHERE phase IN ('rehearsal-2', 'rehearsal-3', 'prod-1-after-T', 'prod-2')`); n != 0 {
		t.Fatalf("--timeline 2: %d rows of other histories", n)
	}
	if err := c3.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	// A production backup after the rehearsals: its restore succeeds on
	// timeline 1 (the rehearsals branched before it, so they are not
	// candidates; PostgreSQL's own 'latest' would pick timeline 4 and stop
	// with "requested timeline 4 is not a child of this server's history").
	insert(t, c, "prod-final", 1)
	prodRows++
	r.mustRun(backupEnv(c), "backup")
	dir = restoredDir(t)
	out = r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir, "--archive-mode", "off")
	if !strings.Contains(out, "recovery follows timeline 1 ") || strings.Contains(out, "can reach") {
		t.Fatalf("restore of the newest backup:\n%s", out)
	}
	c4 := r.startRestored(dir)
	if p, reh := rowsByKind(t, c4); p != prodRows || reh != 0 {
		t.Fatalf("restore of the newest backup: %d production and %d rehearsal rows, want %d and 0", p, reh, prodRows)
	}
	// The newest backup cannot reach a rehearsal's timeline: refused, with why.
	_, stderr, code := r.run("restore", "--to", "latest", "--timeline", "3", "--pgdata", restoredDir(t), "--archive-mode", "off", "--backup", newestBackup(t, r))
	if code != 1 || !strings.Contains(stderr, "before the backup's end") {
		t.Fatalf("--timeline 3 from the newest backup: exit %d: %s", code, stderr)
	}
}

func newestBackup(t *testing.T, r *rig) string {
	t.Helper()
	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		t.Fatal(err)
	}
	return lo.Backups[len(lo.Backups)-1].ID
}

// TestRestoreArchiveModeOff: the restored copy gets archive_mode = off and,
// started and switching WAL, stores nothing in the repository; --start
// without --archive-mode and without a terminal is refused before anything
// is written.
func TestRestoreArchiveModeOff(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "prod-0", 10)
	r.mustRun(backupEnv(c), "backup") // waits until its WAL is archived

	dir := restoredDir(t)
	_, stderr, code := r.run("restore", "--to", "latest", "--pgdata", dir, "--start")
	if code != 2 || !strings.Contains(strings.SplitN(stderr, "\n", 2)[0], "--archive-mode off") {
		t.Fatalf("--start without --archive-mode: exit %d: %q", code, stderr)
	}
	assertAbsent(t, dir)

	before := repoFiles(t, r.repoDir)
	h, out := r.rehearse("latest", "--archive-mode", "off")
	if !strings.Contains(out, "archive_mode = off") {
		t.Fatalf("restore does not say archive_mode = off:\n%s", out)
	}
	conf, err := os.ReadFile(filepath.Join(h.DataDir, "postgresql.auto.conf"))
	if err != nil || !strings.Contains(string(conf), "archive_mode = 'off'") {
		t.Fatalf("postgresql.auto.conf (%v):\n%s", err, conf)
	}
	if mode, _ := h.QueryString(t.Context(), `SHOW archive_mode`); mode != "off" {
		t.Fatalf("restored copy runs with archive_mode %s", mode)
	}
	insert(t, h, "rehearsal", 5)
	if err := h.Exec(t.Context(), `SELECT pg_switch_wal()`); err != nil {
		t.Fatal(err)
	}
	if err := h.Exec(t.Context(), `CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if after := repoFiles(t, r.repoDir); after != before {
		t.Fatalf("a copy restored with --archive-mode off changed the repository:\nbefore %s\nafter  %s", before, after)
	}
}

// repoFiles lists a local repository's files.
func repoFiles(t *testing.T, repo string) string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(repo, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(repo, path)
			names = append(names, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, " ")
}
