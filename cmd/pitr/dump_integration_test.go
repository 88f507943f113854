//go:build integration

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// psql runs SQL in database db of c and returns its unaligned output.
func psql(t *testing.T, c *scratch.Cluster, db, sql string) string {
	t.Helper()
	out, err := c.RunAsOwner(t.Context(), "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func dbExists(t *testing.T, c *scratch.Cluster, db string) bool {
	t.Helper()
	return psql(t, c, "postgres", "SELECT count(*) FROM pg_database WHERE datname = '"+db+"'") == "1"
}

// appDB makes database app with 1000 rows and returns their checksum.
func appDB(t *testing.T, c *scratch.Cluster) string {
	t.Helper()
	if err := c.Exec(t.Context(), `CREATE DATABASE app`); err != nil {
		t.Fatal(err)
	}
	psql(t, c, "app", `CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO item SELECT i, 'item ' || i FROM generate_series(1, 1000) i;
		CREATE INDEX ON item (name)`)
	return itemSum(t, c, "app")
}

func itemSum(t *testing.T, c *scratch.Cluster, db string) string {
	t.Helper()
	return psql(t, c, db, `SELECT count(*) || ' ' || sum(id) || ' ' || md5(string_agg(name, ',' ORDER BY id)) FROM item`)
}

func assertNoDumpObjects(t *testing.T, repo string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(repo, "dumps"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("failed dump left %s", p)
		}
		return nil // no dumps directory at all is fine
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (r *rig) dumps(extra []string) []*catalog.Dump {
	r.t.Helper()
	var out struct{ Dumps []*catalog.Dump }
	if err := json.Unmarshal([]byte(r.mustRun(extra, "dumps", "--json")), &out); err != nil {
		r.t.Fatal(err)
	}
	return out.Dumps
}

// dumpsOf lists the dumps of database db only (each run adds _globals).
func (r *rig) dumpsOf(extra []string, db string) []*catalog.Dump {
	r.t.Helper()
	var out []*catalog.Dump
	for _, d := range r.dumps(extra) {
		if d.Database == db {
			out = append(out, d)
		}
	}
	return out
}

// TestDumpRoundTrip dumps a database and restores it into a new one, on
// both kinds of repository.
func TestDumpRoundTrip(t *testing.T) {
	for _, backend := range []string{"local", "minio"} {
		t.Run(backend, func(t *testing.T) {
			r := newRig(t, backend)
			c := r.cluster(nil)
			want := appDB(t, c)
			env := backupEnv(c)
			out := r.mustRun(env, "dump", "--db", "app")
			t.Logf("dump: %s", strings.TrimSpace(out))
			ds := r.dumpsOf(env, "app")
			if len(ds) != 1 || ds[0].Database != "app" || ds[0].Bytes == 0 || !ds[0].Encrypted || ds[0].PGVersion/10000 != 15 {
				t.Fatalf("dumps after one dump: %+v", ds)
			}
			if list := r.mustRun(env, "dumps"); !strings.Contains(list, ds[0].ID) {
				t.Fatalf("dumps does not list %s:\n%s", ds[0].ID, list)
			}
			r.mustRun(env, "restore-dump", "--db", "app", "--target-db", "app_copy", "--create")
			if got := itemSum(t, c, "app_copy"); got != want {
				t.Fatalf("restored rows %q, want %q", got, want)
			}
			// By id, over the copy: --clean replaces what is there.
			psql(t, c, "app_copy", `DELETE FROM item WHERE id > 10`)
			r.mustRun(env, "restore-dump", "--db", "app", "--id", ds[0].ID, "--target-db", "app_copy", "--clean")
			if got := itemSum(t, c, "app_copy"); got != want {
				t.Fatalf("rows after --clean restore %q, want %q", got, want)
			}
		})
	}
}

// TestDumpFailures: a failed pg_dump lists nothing, and a tampered dump or
// a failing pg_restore exits non-zero with one line, leaving the target
// database as it was.
func TestDumpFailures(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	appDB(t, c)
	env := backupEnv(c)

	expectFail := func(want string, args ...string) {
		t.Helper()
		_, stderr, code := r.runEnv(env, args...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Fatalf("pitr %v: exit %d, stderr %q; want exit 1 and %q", args, code, stderr, want)
		}
		// JSON log lines may precede the error; the error itself is one line.
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "pitr: ") {
			t.Errorf("pitr %v: last stderr line is not the error: %q", args, last)
		}
		t.Logf("pitr %v: %s", args, last)
	}

	expectFail(`database "nope" does not exist`, "dump", "--db", "nope")
	if ds := r.dumps(env); len(ds) != 0 {
		t.Fatalf("failed dump listed: %+v", ds)
	}
	assertNoDumpObjects(t, r.repoDir)

	// pg_dump printing an error, or dying halfway after some output, fails
	// the dump even when its output looked fine so far.
	fakeBin := filepath.Join(testenv.Dir(t), "bin")
	if err := os.Mkdir(fakeBin, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(fakeBin, "pg_dump")
	withFake := append([]string{"PATH=" + fakeBin + ":" + os.Getenv("PATH")}, env...)
	for _, script := range []string{
		"echo PGDMP-some-bytes; echo 'pg_dump: error: query failed: out of memory' >&2; exit 0",
		"head -c 300000 /dev/urandom; exit 1",
	} {
		if err := os.WriteFile(fake, []byte("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 15.99'; exit 0; fi\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := r.runEnv(withFake, "dump", "--db", "app")
		if code != 1 || !strings.Contains(stderr, "pg_dump") {
			t.Fatalf("dump with a failing pg_dump: exit %d: %s", code, stderr)
		}
	}
	if ds := r.dumps(env); len(ds) != 0 {
		t.Fatalf("failed dump listed: %+v", ds)
	}
	assertNoDumpObjects(t, r.repoDir)

	r.mustRun(env, "dump", "--db", "app")
	d := r.dumpsOf(env, "app")[0]

	// pg_restore itself fails: the tables are already there.
	r.mustRun(env, "restore-dump", "--db", "app", "--target-db", "app2", "--create")
	expectFail("pg_restore failed", "restore-dump", "--db", "app", "--target-db", "app2")

	// A flipped bit in the stored archive: age refuses the chunk.
	obj := filepath.Join(r.repoDir, filepath.FromSlash(d.Key))
	data, _ := os.ReadFile(obj)
	orig := append([]byte(nil), data...)
	data[len(data)/2] ^= 0x10
	if err := os.WriteFile(obj, data, 0o640); err != nil {
		t.Fatal(err)
	}
	expectFail("nothing restored", "restore-dump", "--db", "app", "--target-db", "app3", "--create")
	if dbExists(t, c, "app3") {
		t.Fatal("a refused restore left the database it created")
	}
	if err := os.WriteFile(obj, orig, 0o640); err != nil {
		t.Fatal(err)
	}

	// Intact ciphertext, but not the plaintext the entry recorded: found
	// only at the very end, before pg_restore may commit.
	entryKey, _ := catalog.DumpEntryKey("app", d.ID)
	entry := filepath.Join(r.repoDir, filepath.FromSlash(entryKey))
	js, _ := os.ReadFile(entry)
	if err := os.WriteFile(entry, []byte(strings.Replace(string(js), d.SHA256, strings.Repeat("0", 64), 1)), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(t.Context(), `CREATE DATABASE app4`); err != nil {
		t.Fatal(err)
	}
	expectFail("checksum mismatch", "restore-dump", "--db", "app", "--target-db", "app4")
	if n := psql(t, c, "app4", `SELECT count(*) FROM pg_class WHERE relname = 'item'`); n != "0" {
		t.Fatal("a refused restore committed tables")
	}
}
