//go:build integration

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// TestAppRestore is the disaster story of one application: an app point
// (restore point, an uploads set, a settings set with secrets of mode
// 0600 and 0640 + group), rows written after it, the server stopped and
// the files removed; app restore --root brings the database back exactly
// to the restore point and the files under the root with their modes and
// owners, leaving a --keep-settings file the target already has.
func TestAppRestore(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL, at timestamptz DEFAULT clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "a-before-backup", 100)

	dir := testenv.Dir(t)
	uploads, settings := filepath.Join(dir, "srv/chat/uploads"), filepath.Join(dir, "etc/chat")
	picture := randomData(7, 300<<10)
	writeTreeFile(t, filepath.Join(uploads, "2026/a.png"), picture, 0o644)
	writeTreeFile(t, filepath.Join(uploads, "b.txt"), []byte("second upload"), 0o644)
	writeTreeFile(t, filepath.Join(settings, "settings.py"), []byte("DEBUG = False\n"), 0o644)
	writeTreeFile(t, filepath.Join(settings, "secret.env"), []byte("SECRET_KEY=abc\n"), 0o600)
	writeTreeFile(t, filepath.Join(settings, "group.conf"), []byte("password=xyz\n"), 0o640)
	asRoot := os.Geteuid() == 0
	gid := 0
	if asRoot {
		gid = postgresGID(t)
		if err := os.Chown(filepath.Join(settings, "group.conf"), 0, gid); err != nil {
			t.Fatal(err)
		}
	}
	writeTreeFile(t, filepath.Join(dir, "VERSION"), []byte("chat 2.1\n"), 0o644)
	cfg := filepath.Join(dir, "pitr.yaml")
	if err := os.WriteFile(cfg, []byte(`files:
  - name: uploads
    paths: [`+uploads+`]
  - name: settings
    kind: secrets
    paths: [`+settings+`]
apps:
  - name: chat
    database:
      cluster: true
      pgdata: /var/lib/postgresql/15/main
    files: [uploads, settings]
    versions:
      app: [cat, `+filepath.Join(dir, "VERSION")+`]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		return r.mustRun(backupEnv(c), append([]string{"--config", cfg}, args...)...)
	}
	run("backup")
	insert(t, c, "b-after-backup", 50)
	t.Logf("app backup: %s", strings.TrimSpace(run("app", "backup", "chat")))
	insert(t, c, "c-after-app-point", 30)
	// T from the server's clock, after c's commit and before d's.
	T, err := c.QueryString(t.Context(), `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)
	if err != nil {
		t.Fatal(err)
	}
	insert(t, c, "d-after-T", 10)
	switchAndWait(t, c, time.Minute)

	// The disaster: the server stopped, the files and secrets gone; the
	// application's version moved on.
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{uploads, settings} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	writeTreeFile(t, filepath.Join(dir, "VERSION"), []byte("chat 2.2\n"), 0o644)

	root := filepath.Join(testenv.Dir(t), "root")
	kept := filepath.Join(settings, "settings.py")
	writeTreeFile(t, filepath.Join(root, kept), []byte("DEBUG = True # the new machine's\n"), 0o644)
	// archive_mode off: this copy's timeline must not hide the original
	// one from the restore --to T below.
	out := run("app", "restore", "chat", "--to", "latest", "--root", root, "--keep-settings", kept, "--archive-mode", "off")
	t.Logf("app restore:\n%s", out)
	for _, want := range []string{
		"database to its restore point pitr_app_chat_",
		"archive_mode = off (--archive-mode off)",
		`warning: version app differs: recorded "chat 2.1", now "chat 2.2"`,
		"  database: backup ",
		"  files uploads: snapshot ",
		"  files settings: snapshot ",
		"  kept: " + kept + " (exists in the target",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("app restore output lacks %q", want)
		}
	}

	pgdata := filepath.Join(root, "var/lib/postgresql/15/main")
	c2 := r.startRestored(pgdata)
	if got, want := phaseCounts(t, c2), "a-before-backup=100 b-after-backup=50"; got != want {
		t.Errorf("rows after app restore: %q, want %q (exactly the restore point)", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(root, uploads, "2026/a.png")); err != nil || !bytes.Equal(b, picture) {
		t.Errorf("a.png not restored (%v, %d bytes)", err, len(b))
	}
	for name, want := range map[string]string{"srv/chat/uploads/b.txt": "second upload", "etc/chat/secret.env": "SECRET_KEY=abc\n",
		"etc/chat/group.conf": "password=xyz\n", "etc/chat/settings.py": "DEBUG = True # the new machine's\n"} {
		p := filepath.Join(root, dir, name)
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s holds %q (%v), want %q", name, b, err, want)
		}
	}
	for name, mode := range map[string]os.FileMode{"secret.env": 0o600, "group.conf": 0o640} {
		fi, err := os.Stat(filepath.Join(root, settings, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", name, fi.Mode().Perm(), mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); asRoot && name == "group.conf" && int(st.Gid) != gid {
			t.Errorf("%s: group %d, want %d", name, st.Gid, gid)
		}
	}

	// --to T: the files from the app point before T, the database to T.
	root2 := filepath.Join(testenv.Dir(t), "root")
	out = run("app", "restore", "chat", "--to", T, "--root", root2)
	if !strings.Contains(out, "files from app point ") || !strings.Contains(out, " apart") {
		t.Errorf("app restore --to %s does not say how far apart files and database are:\n%s", T, out)
	}
	c3 := r.startRestored(filepath.Join(root2, "var/lib/postgresql/15/main"))
	if got, want := phaseCounts(t, c3), "a-before-backup=100 b-after-backup=50 c-after-app-point=30"; got != want {
		t.Errorf("rows after app restore --to T: %q, want %q", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(root2, settings, "settings.py")); err != nil || string(b) != "DEBUG = False\n" {
		t.Errorf("settings.py (not kept this time) holds %q (%v)", b, err)
	}

	// A second restore into the same root is refused (nothing replaced
	// without --force), naming what is in the way.
	_, stderr, code := r.runEnv(backupEnv(c), "--config", cfg, "app", "restore", "chat", "--root", root, "--no-cluster")
	if code != 1 || !strings.Contains(stderr, "exists at the target") {
		t.Errorf("restore over restored files: exit %d, %s", code, stderr)
	}
}

// TestAppRestoreDumps: an app without the cluster, kept as logical dumps
// with the cluster's roles (globals); after its database is dropped, app
// restore brings it back into the running server (pg_dsn), a second time
// refused while it exists and accepted over it with --force; into a
// fresh server, the role owning its table is created first and owns it
// there.
func TestAppRestoreDumps(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE DATABASE docs`); err != nil {
		t.Fatal(err)
	}
	docs := scratchDB(t, c, "docs")
	if _, err := docs.Exec(t.Context(), `CREATE TABLE doc (id int PRIMARY KEY, title text); INSERT INTO doc SELECT g, 'doc ' || g FROM generate_series(1, 40) g`); err != nil {
		t.Fatal(err)
	}
	docs.Close(t.Context())
	psql(t, c, "postgres", `CREATE ROLE archivist LOGIN PASSWORD 'shelves'`)
	psql(t, c, "docs", `ALTER TABLE doc OWNER TO archivist`)
	dir := testenv.Dir(t)
	cfg := filepath.Join(dir, "pitr.yaml")
	if err := os.WriteFile(cfg, []byte("apps:\n  - name: archive\n    database:\n      dumps: [docs]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return r.runEnv(backupEnv(c), append([]string{"--config", cfg}, args...)...)
	}
	if out, stderr, code := run("app", "backup", "archive"); code != 0 || !strings.Contains(out, "1 dumps and the roles (globals)") {
		t.Fatalf("app backup: exit %d: %s%s", code, out, stderr)
	}
	if show, _, _ := run("app", "show", "archive"); !strings.Contains(show, "_globals") || !strings.Contains(show, "roles and tablespaces") {
		t.Errorf("app show does not name the globals:\n%s", show)
	}
	if err := c.Exec(t.Context(), `DROP DATABASE docs`); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	out, stderr, code := run("app", "restore", "archive", "--root", root)
	if code != 0 || !strings.Contains(out, "  dump docs: dump ") || strings.Contains(out, "archive") && strings.Contains(out, "rehearsal") {
		t.Fatalf("app restore: exit %d:\n%s%s", code, out, stderr)
	}
	t.Logf("app restore:\n%s", out)
	count := func() int64 {
		t.Helper()
		conn := scratchDB(t, c, "docs")
		defer conn.Close(t.Context())
		var n int64
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM doc`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 40 {
		t.Errorf("docs has %d rows after app restore, want 40", n)
	}
	if _, stderr, code := run("app", "restore", "archive", "--root", root); code != 1 || !strings.Contains(stderr, "docs") {
		t.Errorf("restore over the existing database: exit %d: %s", code, stderr)
	}
	if out, stderr, code := run("app", "restore", "archive", "--root", root, "--force"); code != 0 || count() != 40 {
		t.Errorf("restore --force over the existing database: exit %d: %s%s", code, out, stderr)
	}

	// A fresh server, without the role: the globals come first.
	fresh := r.cluster(map[string]string{"archive_mode": "off"})
	out, stderr, code = run("app", "restore", "archive", "--root", filepath.Join(dir, "fresh"), "--dsn", fresh.DSN("postgres"))
	t.Logf("app restore into a fresh server:\n%s", out)
	if code != 0 || !strings.Contains(out, "  roles: globals ") || !strings.Contains(out, "created archivist;") {
		t.Fatalf("app restore into a fresh server: exit %d:\n%s%s", code, out, stderr)
	}
	if got := psql(t, fresh, "docs", `SELECT tableowner || ' ' || (SELECT count(*) FROM doc) FROM pg_tables WHERE tablename = 'doc'`); got != "archivist 40" {
		t.Errorf("doc on the fresh server: owner and rows %q, want archivist 40", got)
	}
	if got := psql(t, fresh, "postgres", `SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'archivist'`); got != "true" {
		t.Errorf("archivist on the fresh server: can login %q, want true", got)
	}
}

// scratchDB connects to database db of c.
func scratchDB(t *testing.T, c *scratch.Cluster, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), c.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}
