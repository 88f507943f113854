package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// layout writes files (path -> content; a trailing "/" makes a directory)
// under dir.
func layout(t *testing.T, dir string, files ...string) string {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, f)
		if strings.HasSuffix(f, "/") {
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func dataDir(t *testing.T, extra ...string) string {
	return layout(t, filepath.Join(t.TempDir(), "data"), append([]string{"PG_VERSION", "global/pg_control", "base/1/1259"}, extra...)...)
}

// fakeProc makes liveDirs see one running postgres per data directory, and
// postmaster.pid pids in running as live.
func fakeProc(t *testing.T, running []int, dataDirs ...string) {
	t.Helper()
	proc := t.TempDir()
	for i, d := range dataDirs {
		p := filepath.Join(proc, strings.Repeat("1", i+1)+"00")
		layout(t, p, "comm")
		if err := os.WriteFile(filepath.Join(p, "comm"), []byte("postgres\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(d, filepath.Join(p, "cwd")); err != nil {
			t.Fatal(err)
		}
	}
	// Another process, not postgres, in a data directory: ignored.
	other := filepath.Join(proc, "7")
	layout(t, other, "comm")
	oldProc, oldRunning := procDir, postgresRunning
	procDir = proc
	postgresRunning = func(pid int) bool {
		for _, r := range running {
			if r == pid {
				return true
			}
		}
		return false
	}
	t.Cleanup(func() { procDir, postgresRunning = oldProc, oldRunning })
}

func wantErr(t *testing.T, err error, substr string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %v, want one containing %q", err, substr)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error is not one line: %q", err)
	}
}

func TestCheckTargetForce(t *testing.T) {
	fakeProc(t, []int{4242})
	user := layout(t, t.TempDir(), "notes.txt", "photos/1.jpg")
	if _, err := checkTarget(user, false); err == nil {
		t.Fatal("non-empty directory accepted without --force")
	}
	_, err := checkTarget(user, true)
	wantErr(t, err, "not a PostgreSQL data directory")
	if _, err := os.Stat(filepath.Join(user, "photos", "1.jpg")); err != nil {
		t.Fatal("user files touched")
	}
	if exists, err := checkTarget(filepath.Join(t.TempDir(), "new"), true); exists || err != nil {
		t.Fatalf("absent directory: %v, %v", exists, err)
	}
	if exists, err := checkTarget(t.TempDir(), false); !exists || err != nil {
		t.Fatalf("empty directory: %v, %v", exists, err)
	}
	if _, err := checkTarget(dataDir(t), true); err != nil {
		t.Fatalf("stopped cluster refused: %v", err)
	}
	stale := dataDir(t, "postmaster.pid")
	if err := os.WriteFile(filepath.Join(stale, "postmaster.pid"), []byte("999999\n/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkTarget(stale, true); err != nil {
		t.Fatalf("stale postmaster.pid refused: %v", err)
	}
	live := dataDir(t, "postmaster.pid")
	if err := os.WriteFile(filepath.Join(live, "postmaster.pid"), []byte("4242\n/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = checkTarget(live, true)
	wantErr(t, err, "pid 4242")
}

// A server running in a data directory is found through /proc even when
// its postmaster.pid is gone, and so are its tablespaces.
func TestLiveDirsRefused(t *testing.T) {
	ts := layout(t, t.TempDir(), "PG_15_202209061/")
	live := dataDir(t, "pg_tblspc/")
	if err := os.Symlink(ts, filepath.Join(live, "pg_tblspc", "16385")); err != nil {
		t.Fatal(err)
	}
	fakeProc(t, nil, live)
	_, err := checkTarget(live, true)
	wantErr(t, err, "data directory of a running PostgreSQL server")
	pgdata := filepath.Join(t.TempDir(), "new")
	// The reported bug: a running cluster's data directory as a tablespace target.
	err = checkTargets(pgdata, []tsTarget{{oid: 16385, from: "/old", dir: live}}, true)
	wantErr(t, err, "tablespace 16385: "+live+" is the data directory of a running PostgreSQL server")
	err = checkTargets(pgdata, []tsTarget{{oid: 16385, from: "/old", dir: ts}}, true)
	wantErr(t, err, "tablespace 16385 of the running PostgreSQL server")
	err = checkTargets(filepath.Join(live, "base", "restored"), nil, false)
	wantErr(t, err, "is inside the data directory of a running PostgreSQL server")
	for _, f := range []string{"PG_VERSION", "global/pg_control", "base/1/1259"} {
		if _, err := os.Stat(filepath.Join(live, f)); err != nil {
			t.Fatalf("live cluster lost %s", f)
		}
	}
	// A symlink to the live directory is the same directory.
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(live, alias); err != nil {
		t.Fatal(err)
	}
	_, err = checkTarget(alias, true)
	wantErr(t, err, "running PostgreSQL server")
}

func TestLiveDirsDashD(t *testing.T) {
	data := dataDir(t)
	proc := t.TempDir()
	layout(t, proc, "55/comm", "55/cmdline", "66/comm")
	if err := os.WriteFile(filepath.Join(proc, "55", "comm"), []byte("postgres\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "55", "cmdline"), []byte("/usr/lib/postgresql/15/bin/postgres\x00-D\x00"+data+"\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	// "postgres --version" run from /: not a server.
	if err := os.WriteFile(filepath.Join(proc, "66", "comm"), []byte("postgres\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(proc, "66", "cwd")); err != nil {
		t.Fatal(err)
	}
	old := procDir
	procDir = proc
	defer func() { procDir = old }()
	got := liveDirs()
	if len(got) != 1 || got[0].dir != resolve(data) || !strings.Contains(got[0].what, "pid 55") {
		t.Fatalf("liveDirs = %+v", got)
	}
}

func TestCheckTargetsTablespaces(t *testing.T) {
	fakeProc(t, nil)
	root := t.TempDir()
	pgdata := filepath.Join(root, "data")
	ts := func(dir string) []tsTarget { return []tsTarget{{oid: 16385, from: "/old/ts", dir: dir}} }
	tests := []struct {
		name  string
		ts    []tsTarget
		force bool
		want  string // "" for no error
	}{
		{"inside pgdata", ts(filepath.Join(pgdata, "ts")), false, "tablespace 16385: " + filepath.Join(pgdata, "ts") + " is inside --pgdata " + pgdata + "; map it elsewhere with --tablespace-map /old/ts=DIR"},
		{"equal to pgdata", ts(pgdata), true, "is inside --pgdata"},
		{"pgdata inside", ts(root), true, "--pgdata " + pgdata + " is inside tablespace 16385's directory " + root},
		{"two overlap", []tsTarget{{oid: 1, dir: filepath.Join(root, "a")}, {oid: 2, dir: filepath.Join(root, "a", "b")}}, false, "tablespace 1 and tablespace 2 would restore into overlapping directories"},
		{"user files, no force", ts(layout(t, filepath.Join(root, "u1"), "notes.txt")), false, "is not empty (use --force"},
		{"user files, force", ts(layout(t, filepath.Join(root, "u2"), "notes.txt", "PG_15_202209061/")), true, `holds "notes.txt"`},
		{"a data directory", ts(layout(t, filepath.Join(root, "d"), "PG_VERSION", "global/pg_control")), true, "is a PostgreSQL data directory, not a tablespace directory"},
		{"a stopped tablespace", ts(layout(t, filepath.Join(root, "t"), "PG_15_202209061/16384/1", "PG_14_202107181/")), true, ""},
		{"absent", ts(filepath.Join(root, "new")), false, ""},
		{"empty", ts(layout(t, filepath.Join(root, "e"), "./")), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkTargets(pgdata, tt.ts, tt.force)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tt.want)
		})
	}
	if _, err := os.Stat(filepath.Join(root, "u2", "notes.txt")); err != nil {
		t.Fatal("user files touched")
	}
}

// Run refuses a tablespace target that is a running cluster before it
// writes anything: no staging directory, the cluster untouched.
func TestRunRefusesLiveTablespaceTarget(t *testing.T) {
	live := dataDir(t)
	fakeProc(t, nil, live)
	m := storagetest.NewMemory()
	key, _ := catalog.WALKey(wal.SegmentFileName(1, 1, seg), strings.Repeat("ab", 32), true)
	mustPut(t, m, key, "x")
	b := bk("20261122T010000Z", 1, 1, at(1, 10))
	b.Tablespaces = []catalog.Tablespace{{OID: 16385, Location: "/old/ts"}}
	storeBackup(t, m, b)
	parent := t.TempDir()
	_, err := Run(t.Context(), Options{Repo: repo.New(m, nil), Target: Target{Kind: Latest}, DataDir: filepath.Join(parent, "data"), Force: true,
		TablespaceMap: map[string]string{"/old/ts": live}, RestoreCommand: "true"})
	wantErr(t, err, "running PostgreSQL server")
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("refused restore wrote %v", entries)
	}
	if _, err := os.Stat(filepath.Join(live, "base", "1", "1259")); err != nil {
		t.Fatal("live cluster touched")
	}
}
