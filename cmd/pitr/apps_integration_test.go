//go:build integration

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// The end-to-end tests of the application examples (examples/apps/<kind>):
// each runs the example's config against a real PostgreSQL archiving into
// MinIO with the built binary: pitr app backup, a disaster (data directory,
// files and secrets removed), pitr app restore, then every part compared
// with what it was (rows, file bytes, modes, owners and groups, Redis keys).

// appTest is one example under test: its config with the application's
// paths under root, a cluster archiving through the rig.
type appTest struct {
	t    *testing.T
	r    *rig
	c    *scratch.Cluster
	name string // the example's app
	root string // the application's files live under it, at their real paths
	env  []string
}

// newAppTest starts MinIO and a cluster archiving into it, and writes the
// kind's example config (see exampleConfig) with what subst returns
// replaced.
func newAppTest(t *testing.T, kind string, subst func(*rig) map[string]string) *appTest {
	t.Helper()
	r := newRig(t, "minio")
	a := &appTest{t: t, r: r, c: r.cluster(nil), root: testenv.Dir(t)}
	all := map[string]string{"age_recipients_file: /etc/pitr/recipients.txt": ""} // the rig's PITR_AGE_RECIPIENTS
	if subst != nil {
		for k, v := range subst(r) {
			all[k] = v
		}
	}
	cfg := filepath.Join(testenv.Dir(t), "pitr.yaml")
	body := exampleConfig(t, kind, a.root, all)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	a.env = []string{"PITR_CONFIG=" + cfg, "PITR_PG_DSN=" + a.c.DSN("postgres"), "XDG_CACHE_HOME=" + t.TempDir()}
	a.name = exampleAppName(t, cfg)
	return a
}

// exampleAppName is the name of the config's one app, as the config
// loader reads it.
func exampleAppName(t *testing.T, path string) string {
	t.Helper()
	c, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Apps) != 1 {
		t.Fatalf("%s: %d apps, want 1", path, len(c.Apps))
	}
	return c.Apps[0].Name
}

func (a *appTest) pitr(args ...string) string {
	a.t.Helper()
	return a.r.mustRun(a.env, args...)
}

func (a *appTest) pitrCode(extra []string, args ...string) (stdout, stderr string, code int) {
	a.t.Helper()
	return a.r.runEnv(append(append([]string{}, a.env...), extra...), args...)
}

// path is where the application's file at p (an absolute path as the
// example names it) lives in this test.
func (a *appTest) path(p string) string { return a.root + p }

// file writes an application file at p with mode and owner.
func (a *appTest) file(p string, data []byte, mode os.FileMode, uid, gid int) {
	a.t.Helper()
	full := a.path(p)
	writeTreeFile(a.t, full, data, mode)
	if err := os.Lchown(full, uid, gid); err != nil {
		a.t.Fatal(err)
	}
}

// appPoints reads the app's complete points from the bucket (app.json is
// plaintext), oldest first.
func (a *appTest) appPoints() []*catalog.App {
	a.t.Helper()
	ctx := a.t.Context()
	out, err := a.r.minio.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(a.r.bucket), Prefix: aws.String("db1/" + catalog.AppPrefixOf(a.name))})
	if err != nil {
		a.t.Fatal(err)
	}
	var points []*catalog.App
	for _, o := range out.Contents {
		if _, _, ok := catalog.ParseAppEntryKey(strings.TrimPrefix(*o.Key, "db1/")); !ok {
			continue
		}
		b := a.get(*o.Key)
		p, err := catalog.UnmarshalApp(b)
		if err != nil {
			a.t.Fatalf("%s: %v", *o.Key, err)
		}
		points = append(points, p)
	}
	sort.Slice(points, func(i, j int) bool { return points[i].ID < points[j].ID })
	return points
}

func (a *appTest) get(key string) []byte {
	a.t.Helper()
	obj, err := a.r.minio.Client().GetObject(a.t.Context(), &s3.GetObjectInput{Bucket: aws.String(a.r.bucket), Key: aws.String(key)})
	if err != nil {
		a.t.Fatalf("get %s: %v", key, err)
	}
	defer obj.Body.Close()
	b, err := io.ReadAll(obj.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return b
}

// backup runs pitr app backup and returns the new app point.
func (a *appTest) backup() *catalog.App {
	a.t.Helper()
	before := len(a.appPoints())
	out := a.pitr("app", "backup", a.name)
	a.t.Logf("app backup %s: %s", a.name, strings.TrimSpace(out))
	points := a.appPoints()
	if len(points) != before+1 {
		a.t.Fatalf("app backup: %d app points, want %d", len(points), before+1)
	}
	return points[len(points)-1]
}

// fileState is what a restore must bring back of one path.
type fileState struct {
	Mode     fs.FileMode
	UID, GID uint32
	Size     int64
	SHA256   [32]byte
	Link     string
}

func (s fileState) String() string {
	return fmt.Sprintf("%v %d:%d %d bytes %x %s", s.Mode, s.UID, s.GID, s.Size, s.SHA256[:4], s.Link)
}

// tree records every path under the application paths ps (as the example
// names them), keyed by that path.
func (a *appTest) tree(ps ...string) map[string]fileState {
	a.t.Helper()
	return readTree(a.t, a.root, ps)
}

// readTree records the paths under root+p for each p, keyed without root.
func readTree(t *testing.T, root string, ps []string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	for _, p := range ps {
		err := filepath.WalkDir(root+p, func(full string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(full)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			s := fileState{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid}
			switch {
			case fi.Mode().IsRegular():
				b, err := os.ReadFile(full)
				if err != nil {
					return err
				}
				s.Size, s.SHA256 = int64(len(b)), sha256.Sum256(b)
			case fi.Mode()&fs.ModeSymlink != 0:
				s.Link, _ = os.Readlink(full)
			}
			out[strings.TrimPrefix(full, root)] = s
			return nil
		})
		if err != nil {
			t.Fatalf("read tree %s: %v", root+p, err)
		}
	}
	return out
}

// disaster says what an example loses and how it is restored.
type disaster struct {
	paths    []string // application paths removed, then compared with what they were
	dataLost bool     // the cluster stopped and its data directory removed
	args     []string // more pitr app restore arguments
	// keep are paths with the target's own content, there before the
	// restore and left as they are (--keep-settings).
	keep map[string]string
	// excluded are paths under paths the app does not back up: absent
	// after the restore.
	excluded []string
}

// disasterThenRestore is the story every example tells: it records the
// application paths, removes them (and the data directory), runs pitr app
// restore NAME --to latest into a new root (and a new data directory when
// the data directory was lost), compares every path brought back with
// what it was, and starts the restored cluster. It returns where the
// application's paths came back (the restore root + a.root), the restored cluster (nil without a lost data directory) and the
// restore's output.
func (a *appTest) disasterThenRestore(d disaster) (string, *scratch.Cluster, string) {
	a.t.Helper()
	want := a.tree(d.paths...)
	for p := range want {
		for _, x := range d.excluded {
			if p == x || strings.HasPrefix(p, x+"/") {
				delete(want, p)
			}
		}
	}
	if d.dataLost {
		if err := a.c.Stop(a.t.Context()); err != nil {
			a.t.Fatal(err)
		}
		if err := os.RemoveAll(a.c.DataDir); err != nil {
			a.t.Fatal(err)
		}
	}
	for _, p := range d.paths {
		if err := os.RemoveAll(a.path(p)); err != nil {
			a.t.Fatal(err)
		}
	}
	root := testenv.Dir(a.t)
	// The application's paths come back under root at their original
	// paths, which are under a.root in this test.
	restored := root + a.root
	for p, content := range d.keep {
		writeTreeFile(a.t, restored+p, []byte(content), 0o644)
	}
	args := []string{"app", "restore", a.name, "--to", "latest", "--root", root}
	pgdata := ""
	if d.dataLost {
		pgdata = restoredDir(a.t)
		args = append(args, "--pgdata", pgdata)
	}
	out := a.pitr(append(args, d.args...)...)
	a.t.Logf("app restore:\n%s", out)
	got := readTree(a.t, restored, d.paths)
	for p, content := range d.keep {
		if b, _ := os.ReadFile(restored + p); string(b) != content {
			a.t.Errorf("%s: the target's copy was replaced by %q", p, b)
		}
		delete(want, p)
		delete(got, p)
	}
	compareTrees(a.t, want, got)
	for _, x := range d.excluded {
		assertAbsent(a.t, restored+x)
	}
	var c *scratch.Cluster
	if d.dataLost {
		c = a.r.startRestored(pgdata)
	}
	return restored, c, out
}

// compareTrees reports every path missing, extra or different.
func compareTrees(t *testing.T, want, got map[string]fileState) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: not restored", p)
		case g != want[p]:
			t.Errorf("%s: restored as %s, was %s", p, g, want[p])
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: restored, but was not there", p)
		}
	}
	if !t.Failed() {
		t.Logf("%d paths restored as they were (bytes, modes, owners)", len(want))
	}
}

// itemDB creates database db with n rows and returns their checksum.
func itemDB(t *testing.T, c *scratch.Cluster, db string, n int) string {
	t.Helper()
	if err := c.Exec(t.Context(), `CREATE DATABASE `+db); err != nil {
		t.Fatal(err)
	}
	psql(t, c, db, fmt.Sprintf(`CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO item SELECT i, '%s ' || i FROM generate_series(1, %d) i`, db, n))
	return itemSum(t, c, db)
}

func serverUser(t *testing.T) (uid, gid int) {
	t.Helper()
	uid, gid, ok := scratch.PostgresUser()
	if !ok {
		t.Skip("no unprivileged user to own application files")
	}
	return uid, gid
}

// TestAppMastodon: the cluster to the app point's restore point exactly
// (rows written after it are gone), public/system, .env.production 0600
// with its owner, and Redis's keys through the hook's dump.rdb.
func TestAppMastodon(t *testing.T) {
	redis := testenv.Redis(t)
	a := newAppTest(t, "mastodon", func(*rig) map[string]string {
		return map[string]string{`"6379"`: fmt.Sprintf("%q", fmt.Sprint(redis.Port))}
	})
	uid, gid := serverUser(t)
	for i := range 20 {
		redis.Do(t, "SET", fmt.Sprintf("mastodon:key:%d", i), fmt.Sprintf("value %d", i))
	}
	redis.Do(t, "RPUSH", "queue:default", "job1", "job2")
	writeTreeFile(t, a.path("/var/backups/redis/.keep"), nil, 0o640)
	if err := os.Chmod(a.path("/var/backups/redis"), 0o750); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		a.file(fmt.Sprintf("/home/mastodon/live/public/system/media_attachments/files/000/%03d/original/%d.png", i, i),
			randomData(uint64(i), 20_000+i*3000), 0o644, uid, gid)
	}
	a.file("/home/mastodon/live/public/system/accounts/avatars/000/001/original/me.jpg", randomData(99, 5000), 0o644, uid, gid)
	a.file("/home/mastodon/live/.env.production", []byte("SECRET_KEY_BASE=abc\nOTP_SECRET=def\nVAPID_PRIVATE_KEY=ghi\n"), 0o600, uid, gid)

	if err := a.c.Exec(t.Context(), `CREATE TABLE statuses (id serial PRIMARY KEY, text text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := a.c.Exec(t.Context(), `INSERT INTO statuses (text) SELECT 'toot ' || i FROM generate_series(1, 500) i`); err != nil {
		t.Fatal(err)
	}
	a.pitr("backup") // the daemon's backup_schedule; the app point's restore point is after it
	point := a.backup()
	if point.RestorePoint == nil {
		t.Fatal("app point without a restore point")
	}
	// After the point: in the WAL archive, but not in the restored database.
	if err := a.c.Exec(t.Context(), `INSERT INTO statuses (text) SELECT 'later ' || i FROM generate_series(1, 50) i`); err != nil {
		t.Fatal(err)
	}
	switchAndWait(t, a.c, time.Minute)
	redis.Stop(t)

	root, c, _ := a.disasterThenRestore(disaster{
		paths:    []string{"/home/mastodon/live/public/system", "/home/mastodon/live/.env.production", "/var/backups/redis"},
		dataLost: true,
	})
	if n, err := c.QueryInt(t.Context(), `SELECT count(*) FROM statuses`); err != nil || n != 500 {
		t.Errorf("restored statuses: %d (%v), want the 500 of the app point", n, err)
	}
	restored := testenv.RedisWith(t, testenv.RedisOptions{Dir: root + "/var/backups/redis"})
	for i := range 20 {
		if got, want := restored.Do(t, "GET", fmt.Sprintf("mastodon:key:%d", i)), fmt.Sprintf("value %d", i); got != want {
			t.Errorf("redis mastodon:key:%d after restore: %q, want %q", i, got, want)
		}
	}
	if got := restored.Do(t, "LLEN", "queue:default"); got != "2" {
		t.Errorf("redis queue:default length after restore: %s, want 2", got)
	}
}

// TestAppZulip: the versions shown without restoring, a restore refused on
// a PostgreSQL major mismatch, settings and the 0640 group-readable
// secrets back, and --keep-settings leaving the target's settings.py.
func TestAppZulip(t *testing.T) {
	a := newAppTest(t, "zulip", nil)
	_, gid := serverUser(t)
	a.file("/etc/zulip/settings.py", []byte("EXTERNAL_HOST = 'chat.example.com'\n"), 0o644, 0, 0)
	a.file("/etc/zulip/zulip.conf", []byte("[machine]\ndeploy_type = production\n"), 0o644, 0, 0)
	a.file("/etc/zulip/zulip-secrets.conf", []byte("[secrets]\nsecret_key = s3cr3t\navatar_salt = salty\n"), 0o640, 0, gid)
	a.file("/home/zulip/uploads/files/2/ab/report.pdf", randomData(1, 40_000), 0o644, 0, 0)
	a.file("/home/zulip/uploads/avatars/2/me.png", randomData(2, 3000), 0o644, 0, 0)
	a.file("/home/zulip/deployments/current/version.txt", []byte("9.2\n"), 0o644, 0, 0)
	rows := itemDB(t, a.c, "zulip", 300)

	a.pitr("backup")
	point := a.backup()
	if got := point.Versions["zulip"]; got != "9.2" {
		t.Errorf("recorded zulip version %q, want 9.2", got)
	}
	// Without the identity: app points are plaintext.
	show, stderr, code := a.pitrCode([]string{"PITR_AGE_IDENTITY_FILE="}, "app", "show", a.name+"/"+point.ID)
	if code != 0 {
		t.Fatalf("app show without the identity: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"9.2", point.Versions["os"], point.Versions["postgresql"], point.RestorePoint.Name} {
		if !strings.Contains(show, want) {
			t.Errorf("app show lacks %q:\n%s", want, show)
		}
	}

	// An app point claiming PostgreSQL 16, under a new id: refused before
	// anything is written.
	fake := *point
	rp := *point.RestorePoint
	fake.RestorePoint = &rp
	fake.ID = point.StartTime.Add(time.Hour).UTC().Format("20060102T150405Z")
	rp.PGVersion = 160004
	fake.Versions = map[string]string{}
	for k, v := range point.Versions {
		fake.Versions[k] = v
	}
	fake.Versions["postgresql"], fake.Versions["postgresql_num"] = "16.4", "160004"
	key, _ := catalog.AppEntryKey(a.name, fake.ID)
	if _, err := a.r.minio.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(a.r.bucket),
		Key: aws.String("db1/" + key), Body: bytes.NewReader(catalog.MarshalApp(&fake))}); err != nil {
		t.Fatal(err)
	}
	refusedRoot, refusedData := testenv.Dir(t), restoredDir(t)
	_, stderr, code = a.pitrCode(nil, "app", "restore", a.name, "--to", fake.ID, "--root", refusedRoot, "--pgdata", refusedData)
	if code == 0 || !strings.Contains(stderr, "16") {
		t.Fatalf("restore of a PostgreSQL 16 app point: exit %d, want a refusal naming 16:\n%s", code, stderr)
	}
	t.Logf("refused: %s", lastLine(stderr))
	if entries, _ := os.ReadDir(refusedRoot); len(entries) > 0 {
		t.Errorf("refused restore wrote %d entries under --root", len(entries))
	}
	if entries, _ := os.ReadDir(refusedData); len(entries) > 0 {
		t.Errorf("refused restore wrote %d entries into --pgdata", len(entries))
	}
	if _, err := a.r.minio.Client().DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(a.r.bucket), Key: aws.String("db1/" + key)}); err != nil {
		t.Fatal(err)
	}

	// The target host has its own settings.py: --keep-settings keeps it.
	keep := a.path("/etc/zulip/settings.py")
	_, c, out := a.disasterThenRestore(disaster{
		paths:    []string{"/etc/zulip", "/home/zulip/uploads"},
		dataLost: true,
		args:     []string{"--keep-settings", keep},
		keep:     map[string]string{"/etc/zulip/settings.py": "EXTERNAL_HOST = 'chattest.example.com'\n"},
	})
	if !strings.Contains(out, "settings.py") {
		t.Errorf("restore output does not report the kept settings file:\n%s", out)
	}
	if got := itemSum(t, c, "zulip"); got != rows {
		t.Errorf("restored zulip rows %s, want %s", got, rows)
	}
}

// dumpKind runs the rest of the story of an example without a cluster:
// its databases (name -> checksum of its rows) are logical dumps of the
// app point, which app restore --dumps brings back into a new server after
// the disaster.
func dumpKind(t *testing.T, a *appTest, point *catalog.App, dbs map[string]string, d disaster) {
	t.Helper()
	var got, want []string
	for _, dump := range point.Dumps {
		got = append(got, dump.Database)
	}
	for db := range dbs {
		want = append(want, db)
	}
	want = append(want, catalog.GlobalsDatabase) // the roles, applied first on restore
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("app point dumps %v, want %v", got, want)
	}
	// The server is lost with its data directory: the dumps go into a
	// new, empty one.
	if err := a.c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(a.c.DataDir); err != nil {
		t.Fatal(err)
	}
	fresh := testenv.Postgres(t, nil)
	d.args = append(d.args, "--dumps", "--dsn", fresh.DSN("postgres"))
	a.disasterThenRestore(d)
	for db, sum := range dbs {
		if got := itemSum(t, fresh, db); got != sum {
			t.Errorf("database %s after restore: %s, want %s", db, got, sum)
		}
	}
}

// TestAppDjango: three databases as dumps, the media without annuaire/,
// and an off-site copy of it all.
func TestAppDjango(t *testing.T) {
	var offsite string
	a := newAppTest(t, "django", func(r *rig) map[string]string {
		offsite = r.minio.NewBucket(t)
		return map[string]string{
			"s3://pitr-offsite/aletheia":            "s3://" + offsite + "/aletheia",
			"https://s3.eu-central-1.amazonaws.com": r.minio.Endpoint,
			"  s3_region: eu-central-1":             "  s3_region: " + r.minio.Region,
		}
	})
	dbs := map[string]string{}
	for i, db := range []string{"aletheia_prod", "aletheia_staging", "umami"} {
		dbs[db] = itemDB(t, a.c, db, 100+i*50)
	}
	var media, annuaire []string
	for _, env := range []string{"prod", "staging"} {
		base := "/opt/docker/aletheia/media/" + env
		a.file(base+"/documents/2026/04/cv.pdf", randomData(3, 30_000), 0o644, 0, 0)
		a.file(base+"/images/logo.png", randomData(4, 4000), 0o644, 0, 0)
		a.file(base+"/annuaire/2026-04-15/rpps.csv", randomData(5, 50_000), 0o644, 0, 0)
		media, annuaire = append(media, base), append(annuaire, base+"/annuaire")
	}
	point := a.backup()

	// The off-site copy: every dump of the app point is there.
	out := a.pitr("copy")
	t.Logf("copy: %s", strings.TrimSpace(out))
	listed := a.r.mustRun(append(append([]string{}, a.env...), "PITR_REPO=s3://"+offsite+"/aletheia"), "dumps")
	for _, d := range point.Dumps {
		if !strings.Contains(listed, d.ID) || !strings.Contains(listed, d.Database) {
			t.Errorf("off-site repository lacks dump %s/%s:\n%s", d.Database, d.ID, listed)
		}
	}

	// The archive tier: each dated folder is uploaded once, by the first
	// snapshot that sees it, and the snapshot is pinned (kept forever).
	a.pitr("files", "backup", "rpps-prod")
	a.file("/opt/docker/aletheia/media/prod/annuaire/2026-05-15/rpps.csv", randomData(6, 20_000), 0o644, 0, 0)
	a.pitr("files", "backup", "rpps-prod")
	snaps := filesList(t, a, "rpps-prod")
	if len(snaps) != 2 {
		t.Fatalf("%d rpps-prod snapshots, want 2", len(snaps))
	}
	if s := snaps[1]; s.NewBytes > 20_000+4096 || s.Bytes < 70_000 {
		t.Errorf("second rpps-prod snapshot: %d of %d bytes new, want only the new folder's 20000", s.NewBytes, s.Bytes)
	}
	if out := a.pitr("pin", "files:rpps-prod/"+snaps[1].ID, "--note", "RPPS 2026-05-15"); !strings.Contains(out, "pinned") {
		t.Errorf("pin: %s", out)
	}

	dumpKind(t, a, point, dbs, disaster{paths: media, excluded: annuaire})
}

// TestAppCapRover: the platform's config directory and a dump per app
// database.
func TestAppCapRover(t *testing.T) {
	a := newAppTest(t, "caprover", nil)
	a.file("/captain/data/config-captain.json", []byte(`{"apps":{"blog":{},"shop":{},"analytics":{}}}`), 0o600, 0, 0)
	a.file("/captain/data/nginx-shared/blog.conf", []byte("server { listen 80; }\n"), 0o644, 0, 0)
	a.file("/captain/data/letencrypt/live/blog.example.com/privkey.pem", []byte("-----BEGIN PRIVATE KEY-----\nMIIB\n"), 0o600, 0, 0)
	a.file("/captain/data/registry/docker/big-layer", randomData(6, 100_000), 0o644, 0, 0)
	dbs := map[string]string{}
	for i, db := range []string{"blog", "shop", "analytics"} {
		dbs[db] = itemDB(t, a.c, db, 50+i*10)
	}
	dumpKind(t, a, a.backup(), dbs, disaster{paths: []string{"/captain/data"}, excluded: []string{"/captain/data/registry"}})
}

// TestAppAleph: the immutable archive's second snapshot uploads almost
// nothing; the app and entity-store databases come back from their dumps.
func TestAppAleph(t *testing.T) {
	a := newAppTest(t, "aleph", nil)
	const n, size = 16, 256 << 10
	for i := range n {
		a.file(fmt.Sprintf("/srv/aleph/archive/%02x/%02x/%d.bin", i, i*7, i), randomData(uint64(100+i), size), 0o644, 0, 0)
	}
	dbs := map[string]string{"aleph": itemDB(t, a.c, "aleph", 200), "ftm_store": itemDB(t, a.c, "ftm_store", 400)}
	first := a.backup()
	a.file("/srv/aleph/archive/ff/ff/new.bin", randomData(999, 1000), 0o644, 0, 0)
	second := a.backup()
	snaps := filesList(t, a, "archive-files")
	byID := map[string]*catalog.Snapshot{}
	for _, s := range snaps {
		byID[s.ID] = s
	}
	s1, s2 := byID[first.Snapshots[0].ID], byID[second.Snapshots[0].ID]
	if s1 == nil || s2 == nil {
		t.Fatalf("snapshots %v of the app points not listed", snaps)
	}
	t.Logf("archive snapshots: first new %d stored %d; second new %d stored %d of %d bytes", s1.NewBytes, s1.Stored, s2.NewBytes, s2.Stored, s2.Bytes)
	if s1.NewBytes < n*size {
		t.Errorf("first snapshot stored %d new bytes, want the archive's %d", s1.NewBytes, n*size)
	}
	if s2.NewBytes > 64<<10 || s2.Stored > 256<<10 {
		t.Errorf("second snapshot: %d new bytes, %d stored; want almost nothing (the archive is immutable)", s2.NewBytes, s2.Stored)
	}
	dumpKind(t, a, second, dbs, disaster{paths: []string{"/srv/aleph/archive"}})
}

// filesList is pitr files list --set SET --json.
func filesList(t *testing.T, a *appTest, set string) []*catalog.Snapshot {
	t.Helper()
	var out struct {
		Snapshots []*catalog.Snapshot `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(a.pitr("files", "list", "--set", set, "--json")), &out); err != nil {
		t.Fatal(err)
	}
	return out.Snapshots
}
