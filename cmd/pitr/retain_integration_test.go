//go:build integration

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/storage"
)

// historyKeys returns the stored timeline history files.
func historyKeys(t *testing.T, st storage.Storage) []string {
	t.Helper()
	var out []string
	if err := st.List(t.Context(), "wal/timelines/", func(oi storage.ObjectInfo) error {
		out = append(out, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRetainKeepLastOne: a backup on timeline 1, a restore that promotes
// to timeline 2 and archives into the same repository, a second backup
// there. retain --keep-last 1 prints what its dry run printed, deletes the
// first backup and timeline 1's WAL, keeps every .history file, leaves
// the window it announced, and a restore to latest still has every row.
func TestRetainKeepLastOne(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "a", 100)
	r.mustRun(backupEnv(c), "backup")
	insert(t, c, "b", 50)
	switchAndWait(t, c, time.Minute)
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	dir1 := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir1)
	c1 := r.startRestored(dir1) // promotes to timeline 2, archiving into the repository
	insert(t, c1, "c", 30)
	r.mustRun(backupEnv(c1), "backup")
	insert(t, c1, "d", 20)
	switchAndWait(t, c1, time.Minute)
	st := r.store()
	histories := historyKeys(t, st)
	if len(histories) == 0 {
		t.Fatal("no timeline history stored after the promotion")
	}

	dry := r.mustRun(nil, "retain", "--keep-last", "1", "--dry-run")
	t.Logf("retain --dry-run:\n%s", dry)
	if !strings.Contains(dry, "backups: keep 1, delete 1 (") || !strings.Contains(dry, "dry run: nothing deleted\n") {
		t.Fatalf("dry run:\n%s", dry)
	}
	if n := len(r.list().Backups); n != 2 {
		t.Fatalf("dry run deleted: %d backups left", n)
	}
	real := r.mustRun(nil, "retain", "--keep-last", "1")
	if real != strings.TrimSuffix(dry, "dry run: nothing deleted\n") {
		t.Errorf("retain printed\n%s\nits dry run\n%s", real, dry)
	}
	lo := r.list()
	if len(lo.Backups) != 1 || lo.Backups[0].Timeline != 2 {
		t.Fatalf("after retain: %+v", lo.Backups)
	}
	list := r.mustRun(nil, "list")
	_, window, _ := strings.Cut(real, "window: ")
	window, _, _ = strings.Cut(window, "\n")
	if !strings.Contains(list, window+"\n") {
		t.Errorf("list after retain lacks the announced window %q:\n%s", window, list)
	}
	if got := historyKeys(t, st); strings.Join(got, " ") != strings.Join(histories, " ") {
		t.Errorf("history files %v after retain, want %v", got, histories)
	}
	var tl1 int
	if err := st.List(t.Context(), "wal/00000001", func(storage.ObjectInfo) error { tl1++; return nil }); err != nil {
		t.Fatal(err)
	}
	if tl1 != 0 {
		t.Errorf("%d timeline 1 WAL files kept; no kept backup needs them", tl1)
	}
	if err := c1.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	dir2 := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir2)
	c2 := r.startRestored(dir2)
	if got, want := phaseCounts(t, c2), "a=100 b=50 c=30 d=20"; got != want {
		t.Fatalf("restore after retain: rows %q, want %q", got, want)
	}
}

// TestRetainDuringBackup: retain --keep-last 1 runs again and again while a
// base backup runs; both succeed, and the new backup restores with every
// row.
func TestRetainDuringBackup(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL, pad text)`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "a", 100)
	r.mustRun(backupEnv(c), "backup")
	if err := c.Exec(t.Context(), `INSERT INTO marker (phase, pad) SELECT 'b', md5(i::text) || repeat('x', 200) FROM generate_series(1, 200000) i`); err != nil {
		t.Fatal(err)
	}
	switchAndWait(t, c, time.Minute)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	bk := exec.CommandContext(ctx, r.pitr, "backup")
	bk.Env = append(append(os.Environ(), r.env...), backupEnv(c)...)
	var bout bytes.Buffer
	bk.Stdout, bk.Stderr = &bout, &bout
	if err := bk.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- bk.Wait() }()
	runs := 0
	var berr error
loop:
	for {
		select {
		case berr = <-done:
			break loop
		default:
		}
		if out, stderr, code := r.run("retain", "--keep-last", "1"); code != 0 {
			t.Fatalf("retain during a backup: exit %d\n%s%s", code, out, stderr)
		}
		runs++
	}
	if berr != nil {
		t.Fatalf("backup during retain: %v\n%s", berr, bout.String())
	}
	t.Logf("retain ran %d times during the backup", runs)
	insert(t, c, "c", 10)
	switchAndWait(t, c, time.Minute)
	r.mustRun(nil, "retain", "--keep-last", "1")
	if lo := r.list(); len(lo.Backups) != 1 || !lo.Backups[0].Usable {
		t.Fatalf("after retain: %+v", lo.Backups)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	dir := restoredDir(t)
	r.mustRun(nil, "restore", "--to", "latest", "--pgdata", dir)
	c2 := r.startRestored(dir)
	if got, want := phaseCounts(t, c2), "a=100 b=200000 c=10"; got != want {
		t.Fatalf("restore of the backup taken during retain: rows %q, want %q", got, want)
	}
}
