//go:build integration

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// listed is what these tests read of list --json.
type listed struct {
	Backups []struct {
		ID     string         `json:"id"`
		Parts  []catalog.Part `json:"parts"`
		Usable bool           `json:"usable"`
		Status string         `json:"status"`
	} `json:"backups"`
	Damaged []struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
	} `json:"damaged_backups"`
}

// listJSON runs list --json and decodes it.
func (r *rig) listJSON() listed {
	r.t.Helper()
	var lo listed
	js := r.mustRun(nil, "list", "--json")
	if err := json.Unmarshal([]byte(js), &lo); err != nil {
		r.t.Fatalf("list --json: %v\n%s", err, js)
	}
	return lo
}

// expectFail runs pitr and wants a non-zero exit whose error (the last
// line of stderr, after any log lines) contains want.
func (r *rig) expectFail(want string, args ...string) {
	r.t.Helper()
	_, stderr, code := r.run(args...)
	if code == 0 || !strings.Contains(lastLine(stderr), want) {
		r.t.Fatalf("pitr %v: exit %d, stderr %q; want a failure naming %q", args, code, stderr, want)
	}
	r.t.Logf("pitr %v: %s", args[:1], lastLine(stderr))
}

// TestListDamagedAndMissing: a truncated backup.json is named by list and
// skipped, and another backup still restores; a backup whose base.tar was
// deleted is listed with the part missing and not chosen by restore.
func TestListDamagedAndMissing(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "a", 10)
	r.mustRun(backupEnv(c), "backup")
	insert(t, c, "b", 10)
	r.mustRun(backupEnv(c), "backup") // no pause: in the first's second, its id is <first>-1
	insert(t, c, "c", 10)
	switchAndWait(t, c, time.Minute)
	lo := r.listJSON()
	if len(lo.Backups) != 2 {
		t.Fatalf("%d backups listed, want 2", len(lo.Backups))
	}
	older, newer := lo.Backups[0], lo.Backups[1]

	// A truncated entry of the older backup.
	entry := filepath.Join(r.repoDir, filepath.FromSlash(catalog.BackupEntryKey(older.ID)))
	orig, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry, orig[:len(orig)/2], 0o640); err != nil {
		t.Fatal(err)
	}
	out := r.mustRun(nil, "list")
	t.Logf("list with a truncated entry:\n%s", out)
	if !strings.Contains(out, "damaged: "+older.ID+" (not valid JSON") || !strings.Contains(out, newer.ID) {
		t.Fatalf("list does not name the damaged entry and the good one:\n%s", out)
	}
	lo = r.listJSON()
	if len(lo.Backups) != 1 || len(lo.Damaged) != 1 || lo.Damaged[0].ID != older.ID || lo.Damaged[0].Reason == "" {
		t.Fatalf("list --json: backups %d, damaged %+v", len(lo.Backups), lo.Damaged)
	}
	r.expectFail("backup "+older.ID+": damaged entry", "restore", "--to", "latest", "--backup", older.ID, "--pgdata", restoredDir(t))
	r.expectFail("backup "+older.ID+": damaged entry", "show", older.ID)
	r.mustRun(nil, "show", newer.ID)
	dest := restoredDir(t)
	out = r.mustRun(nil, "restore", "--to", "latest", "--backup", newer.ID, "--pgdata", dest)
	if !strings.Contains(out, "restored backup "+newer.ID+" (") {
		t.Fatalf("restore --backup %s: %s", newer.ID, out)
	}
	if err := os.WriteFile(entry, orig, 0o640); err != nil {
		t.Fatal(err)
	}

	// The newer backup's base.tar is gone: listed as such, not chosen.
	var base string
	for _, p := range newer.Parts {
		if p.Name == "base.tar" {
			base = filepath.Join(r.repoDir, filepath.FromSlash(p.Key))
		}
	}
	if err := os.Rename(base, base+".hidden"); err != nil {
		t.Fatal(err)
	}
	out = r.mustRun(nil, "list")
	t.Logf("list with base.tar deleted:\n%s", out)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, newer.ID) && !strings.HasSuffix(line, "part missing: base.tar") {
			t.Fatalf("list shows %q for a backup without base.tar", line)
		}
	}
	lo = r.listJSON()
	if lo.Backups[1].Usable || lo.Backups[1].Status != "part missing: base.tar" || !lo.Backups[0].Usable {
		t.Fatalf("list --json: %+v", lo.Backups)
	}
	r.expectFail("backup "+newer.ID+" is not restorable: part missing: base.tar", "restore", "--to", "latest", "--backup", newer.ID, "--pgdata", restoredDir(t))
	dest = restoredDir(t)
	out = r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dest)
	if !strings.Contains(out, "restored backup "+older.ID+" (") { // older.ID may be a prefix of newer.ID
		t.Fatalf("restore --to latest did not fall back to %s: %s", older.ID, out)
	}
	c2 := r.startRestored(dest)
	if got, want := phaseCounts(t, c2), "a=10 b=10 c=10"; got != want {
		t.Fatalf("restored rows %q, want %q", got, want)
	}
}

// TestRestoreForceLive: --force never replaces a running cluster (as
// --pgdata, as a --tablespace-map target, or through its tablespace) nor
// a directory of user files; it still replaces a stopped cluster.
func TestRestoreForceLive(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	tsDir := testenv.Dir(t)
	if err := c.Exec(t.Context(), `CREATE TABLESPACE side LOCATION '`+tsDir+`'`); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(t.Context(), `CREATE TABLE side_rows TABLESPACE side AS SELECT g AS id FROM generate_series(1, 123) g`); err != nil {
		t.Fatal(err)
	}
	r.mustRun(backupEnv(c), "backup")
	if err := c.Exec(t.Context(), `INSERT INTO side_rows VALUES (124)`); err != nil {
		t.Fatal(err)
	}
	switchAndWait(t, c, time.Minute)
	stillRuns := func() {
		t.Helper()
		if n, err := c.QueryInt(t.Context(), `SELECT count(*) FROM side_rows`); err != nil || n != 124 {
			t.Fatalf("the running cluster was harmed: %d rows, %v", n, err)
		}
		for _, f := range []string{"PG_VERSION", "global/pg_control", "postgresql.conf"} {
			if _, err := os.Stat(filepath.Join(c.DataDir, f)); err != nil {
				t.Fatalf("the running cluster lost %s", f)
			}
		}
	}
	// The reported bug first: a running cluster's data directory as a
	// tablespace target was wiped, exit 0.
	other := filepath.Join(testenv.Dir(t), "side")
	dest := restoredDir(t)
	r.expectFail("tablespace ", "restore", "--to", "latest", "--force", "--pgdata", dest, "--tablespace-map", tsDir+"="+c.DataDir)
	stillRuns()
	assertAbsent(t, dest)
	r.expectFail("running PostgreSQL server", "restore", "--to", "latest", "--force", "--pgdata", c.DataDir, "--tablespace-map", tsDir+"="+other)
	stillRuns()
	r.expectFail("running PostgreSQL server", "restore", "--to", "latest", "--force", "--pgdata", dest) // into its live tablespace
	stillRuns()
	assertAbsent(t, dest)

	user := testenv.Dir(t)
	if err := os.WriteFile(filepath.Join(user, "thesis.txt"), []byte("years of work"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.expectFail("not a PostgreSQL data directory", "restore", "--to", "latest", "--force", "--pgdata", user, "--tablespace-map", tsDir+"="+other)
	if b, err := os.ReadFile(filepath.Join(user, "thesis.txt")); err != nil || string(b) != "years of work" {
		t.Fatalf("user files harmed: %v", err)
	}
	r.expectFail("inside --pgdata", "restore", "--to", "latest", "--pgdata", dest, "--tablespace-map", tsDir+"="+filepath.Join(dest, "ts"))
	assertAbsent(t, dest)

	// Stopped, the same cluster (data directory and tablespace) is replaced.
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.mustRun(nil, "restore", "--to", "latest", "--force", "--pgdata", c.DataDir)
	c2 := r.startRestored(c.DataDir)
	if n, err := c2.QueryInt(t.Context(), `SELECT count(*) FROM side_rows`); err != nil || n != 124 {
		t.Fatalf("restored over the stopped cluster: %d rows, %v", n, err)
	}
}
