//go:build integration

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRestoreMixedCodecs restores through a repository whose backup and
// first WAL were written with zstd, later WAL with lz4 and then with the
// default (s2): each object's codec is recognised from the object, so
// changing compression needs nothing else, and restore and wal-fetch work
// across the change.
func TestRestoreMixedCodecs(t *testing.T) {
	r := newRig(t, "local")
	push := func(codec string) string {
		return fmt.Sprintf("PITR_COMPRESSION=%s '%s' wal-push %%p", codec, r.pitr)
	}
	c := r.cluster(map[string]string{"archive_command": push("zstd")})
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL, at timestamptz DEFAULT clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "a-zstd", 10)
	r.mustRun(append(backupEnv(c), "PITR_COMPRESSION=zstd"), "backup")
	insert(t, c, "b-zstd", 20)
	switchAndWait(t, c, time.Minute)
	for _, codec := range []string{"lz4", "s2"} {
		if err := c.Exec(t.Context(), "ALTER SYSTEM SET archive_command = '"+strings.ReplaceAll(push(codec), "'", "''")+"'"); err != nil {
			t.Fatal(err)
		}
		if err := c.Exec(t.Context(), `SELECT pg_reload_conf()`); err != nil {
			t.Fatal(err)
		}
		insert(t, c, "c-"+codec, 30)
		switchAndWait(t, c, time.Minute)
	}
	dir := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir)
	c1 := r.startRestored(dir)
	if got, want := phaseCounts(t, c1), "a-zstd=10 b-zstd=20 c-lz4=30 c-s2=30"; got != want {
		t.Fatalf("restore across codecs: rows %q, want %q", got, want)
	}
}
