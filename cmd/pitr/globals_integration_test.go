//go:build integration

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDumpGlobals: a role made on server A comes back on a fresh server B
// with restore-dump --globals, with its password hash, and a database dump
// restored there keeps its owner; applying again leaves existing roles.
func TestDumpGlobals(t *testing.T) {
	r := newRig(t, "local")
	a := r.cluster(nil)
	psql(t, a, "postgres", `CREATE ROLE alice LOGIN PASSWORD 'wonderland'; CREATE ROLE readers; GRANT readers TO alice`)
	appDB(t, a)
	psql(t, a, "app", `ALTER TABLE item OWNER TO alice`)
	hash := psql(t, a, "postgres", `SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'`)
	out := r.mustRun(backupEnv(a), "dump", "--db", "app")
	if !strings.Contains(out, "globals ") {
		t.Fatalf("dump did not store globals:\n%s", out)
	}
	g := r.dumpsOf(backupEnv(a), "_globals")
	if len(g) != 1 || g[0].Kind != "globals" || !g[0].Encrypted {
		t.Fatalf("globals entries %+v", g)
	}

	// dump_globals: false (or --no-globals) skips them.
	out = r.mustRun(append(backupEnv(a), "PITR_DUMP_GLOBALS=false"), "dump", "--db", "app")
	if strings.Contains(out, "globals ") || len(r.dumpsOf(backupEnv(a), "_globals")) != 1 {
		t.Fatalf("dump with dump_globals false stored globals:\n%s", out)
	}

	// Password hashes are secrets: sealed, never in plaintext.
	_ = filepath.WalkDir(r.repoDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("SCRAM-SHA-256")) {
				t.Errorf("%s holds a password hash in plaintext", p)
			}
		}
		return nil
	})

	// A restore-dump of _globals as a database is refused with the way out.
	r.expectFail("restore-dump --globals", "restore-dump", "--db", "_globals", "--target-db", "x", "--create")

	b := r.cluster(map[string]string{"archive_mode": "off"})
	envB := backupEnv(b)
	out = r.mustRun(envB, "restore-dump", "--globals")
	t.Logf("restore-dump --globals: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "created roles: alice, readers") || !strings.Contains(out, "existing roles left as they are: postgres") {
		t.Fatalf("restore-dump --globals said:\n%s", out)
	}
	if got := psql(t, b, "postgres", `SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'`); got != hash {
		t.Fatalf("alice's password hash on B %q, want %q", got, hash)
	}
	if got := psql(t, b, "postgres", `SELECT pg_has_role('alice', 'readers', 'MEMBER')::text`); got != "true" {
		t.Fatal("alice lost her membership of readers")
	}
	r.mustRun(envB, "restore-dump", "--db", "app", "--target-db", "app", "--create")
	if got := psql(t, b, "app", `SELECT tableowner FROM pg_tables WHERE tablename = 'item'`); got != "alice" {
		t.Fatalf("item owned by %q on B, want alice", got)
	}

	// Again: nothing to create, alice left as she is (her password too).
	psql(t, b, "postgres", `ALTER ROLE alice PASSWORD 'changed'`)
	out = r.mustRun(envB, "restore-dump", "--globals")
	if !strings.Contains(out, "created roles: none") || !strings.Contains(out, "alice") {
		t.Fatalf("second restore-dump --globals said:\n%s", out)
	}
	if got := psql(t, b, "postgres", `SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'`); got == hash {
		t.Fatal("applying globals again changed an existing role's password")
	}
}
