package app

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

var rt0 = time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)

// point is an app point of "chat" whose restore point is at rt0+min.
func point(min int, pgNum string) *catalog.App {
	at := rt0.Add(time.Duration(min) * time.Minute)
	id := catalog.BackupID(at)
	return &catalog.App{ID: id, Format: catalog.AppFormat, App: "chat", StartTime: at, EndTime: at.Add(time.Minute),
		RestorePoint: &catalog.AppRestorePoint{Name: "pitr_app_chat_" + id, LSN: "0/3000028", Time: at.Add(2 * time.Second), Timeline: 1, PGVersion: 150010},
		Snapshots:    []catalog.AppSnapshot{{Set: "settings", ID: id}},
		Versions:     map[string]string{"postgresql_num": pgNum, "app": "chat 2.1", "os": "Debian 12"}}
}

// TestChoosePoint: latest, an ID, a time between points (files from the
// point before, database to the time, how far apart), a time before the
// first point.
func TestChoosePoint(t *testing.T) {
	points := []*catalog.App{point(0, "150010"), point(58, "150010"), point(120, "150010")}
	tests := []struct {
		name    string
		to      RestoreTo
		want    string // the point's id
		dbTime  time.Time
		apart   time.Duration
		line    string
		wantErr string
	}{
		{name: "latest", want: points[2].ID, line: "app point 20261122T150000Z at 2026-11-22T15:00:02Z: files from it, database to its restore point pitr_app_chat_20261122T150000Z (LSN 0/3000028, timeline 1)"},
		{name: "id", to: RestoreTo{ID: points[0].ID}, want: points[0].ID},
		{name: "time between", to: RestoreTo{Time: rt0.Add(time.Hour)}, want: points[1].ID, dbTime: rt0.Add(time.Hour), apart: time.Minute + 58*time.Second,
			line: "files from app point 20261122T135800Z at 2026-11-22T13:58:02Z, database to 2026-11-22T14:00:00Z: 1m58s apart"},
		{name: "time at a point", to: RestoreTo{Time: points[1].RestorePoint.Time}, want: points[1].ID, dbTime: points[1].RestorePoint.Time},
		{name: "time before the first", to: RestoreTo{Time: rt0}, wantErr: "no app point of chat at or before 2026-11-22T13:00:00Z: the first is 20261122T130000Z at 2026-11-22T13:00:02Z"},
		{name: "unknown id", to: RestoreTo{ID: "20261122T140000Z"}, wantErr: "no complete app point 20261122T140000Z of chat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ChoosePoint(points, "chat", tc.to)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Point.ID != tc.want || !c.DBTime.Equal(tc.dbTime) || c.Apart != tc.apart {
				t.Errorf("chose %s, database to %s, %s apart; want %s, %s, %s", c.Point.ID, c.DBTime, c.Apart, tc.want, tc.dbTime, tc.apart)
			}
			if tc.line != "" && c.Describe() != tc.line {
				t.Errorf("Describe() = %q\nwant        %q", c.Describe(), tc.line)
			}
		})
	}
	noCluster := point(0, "")
	noCluster.RestorePoint = nil
	c, err := ChoosePoint([]*catalog.App{noCluster}, "chat", RestoreTo{Time: rt0.Add(time.Hour)})
	if err != nil || c.Describe() != "app point 20261122T130000Z at 2026-11-22T13:00:00Z, the newest at or before 2026-11-22T14:00:00Z (it holds no cluster: nothing recovers to that time)" {
		t.Errorf("no cluster, --to TIME: %q, %v", c.Describe(), err)
	}
	if _, err := ChoosePoint(nil, "chat", RestoreTo{}); err == nil || !strings.Contains(err.Error(), "no app points of chat") {
		t.Errorf("no points: %v", err)
	}
}

// TestCheckPostgreSQL: an app point recorded on PostgreSQL 16 is refused
// on a machine with 15 only, with the one-line message.
func TestCheckPostgreSQL(t *testing.T) {
	p16 := point(0, "160004")
	err := CheckPostgreSQL(p16, []string{"15"})
	want := "app point 20261122T130000Z was taken on PostgreSQL 16; a physical backup restores only on the same major: install PostgreSQL 16 or restore the logical dumps (this machine has PostgreSQL 15)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
	if err := CheckPostgreSQL(point(0, "150010"), []string{"14", "15"}); err != nil {
		t.Errorf("same major refused: %v", err)
	}
	if err := CheckPostgreSQL(point(0, "90624"), []string{"9.6"}); err != nil {
		t.Errorf("9.6 refused: %v", err)
	}
	noNum := point(0, "")
	noNum.RestorePoint.PGVersion = 160000
	if err := CheckPostgreSQL(noNum, []string{"15"}); err == nil || !strings.Contains(err.Error(), "PostgreSQL 16;") {
		t.Errorf("the restore point's version is not used: %v", err)
	}
	for in, want := range map[string]string{"pg_ctl (PostgreSQL) 15.10 (Debian 15.10-1.pgdg120+1)": "15", "pg_ctl (PostgreSQL) 9.6.24": "9.6", "pg_ctl (PostgreSQL) 17beta1": "17", "bash": ""} {
		if got := ParseVersionMajor(in); got != want {
			t.Errorf("ParseVersionMajor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVersionWarnings(t *testing.T) {
	got := VersionWarnings(map[string]string{"app": "chat 2.1", "os": "Debian 12", "gone": "x", "postgresql": "15.10", "postgresql_num": "150010"},
		map[string]string{"app": "chat 2.2", "os": "Debian 12\n", "postgresql": "16.1"})
	want := `version app differs: recorded "chat 2.1", now "chat 2.2"`
	if len(got) != 1 || got[0] != want {
		t.Errorf("warnings %q, want [%s]", got, want)
	}
}

// restoreJobs records what Restore asked the jobs for.
type restoreJobs struct {
	db    []DBRequest
	files []FilesRequest
	dumps []string // databases restored, and the globals, in order
	fail  error
	// failGlobals fails RestoreGlobals.
	failGlobals error
}

func (f *restoreJobs) wire(o *RestoreOptions) {
	o.RestoreDB = func(_ context.Context, req DBRequest) (DBResult, error) {
		f.db = append(f.db, req)
		return DBResult{Backup: "20261122T120000Z", Files: 1000, Bytes: 30 << 20}, f.fail
	}
	o.RestoreFiles = func(_ context.Context, req FilesRequest) (FilesResult, error) {
		f.files = append(f.files, req)
		return FilesResult{Files: 3, Bytes: 100}, nil
	}
	o.RestoreDump = func(_ context.Context, d catalog.AppDump) error {
		f.dumps = append(f.dumps, d.Database)
		return nil
	}
	o.RestoreGlobals = func(_ context.Context, d catalog.AppDump) (GlobalsResult, error) {
		f.dumps = append(f.dumps, d.Database)
		return GlobalsResult{Created: []string{"zulip"}, Existing: []string{"postgres"}}, f.failGlobals
	}
}

// appRepo stores points and their snapshot entries in memory.
func appRepo(t *testing.T, points ...*catalog.App) *repo.Repo {
	t.Helper()
	r := repo.New(storagetest.NewMemory(), nil)
	for _, a := range points {
		for _, s := range a.Snapshots {
			key, _ := catalog.SnapshotEntryKey(s.Set, s.ID)
			man, _ := catalog.ManifestKey(s.Set, s.ID, false)
			snap := &catalog.Snapshot{ID: s.ID, Format: catalog.FormatVersion, Set: s.Set, StartTime: a.StartTime, Files: 3, Bytes: 100,
				Manifest: catalog.Part{Name: "manifest", Key: man, SHA256: strings.Repeat("0", 64)}}
			if err := r.SaveEntry(t.Context(), key, catalog.MarshalSnapshot(snap)); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.SaveApp(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// TestRestore: the database to the restore point, the files under the
// root with a kept settings file excluded (one not in the target is
// restored), the dumps with Dumps, a version warning; PostgreSQL 16
// refused before any job runs.
func TestRestore(t *testing.T) {
	p := point(0, "150010")
	p.Dumps = []catalog.AppDump{{Database: "chat", ID: p.ID, Bytes: 10}, {Database: catalog.GlobalsDatabase, ID: p.ID, Bytes: 3}}
	r := appRepo(t, p)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/chat"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/chat/settings[1].py"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	f := &restoreJobs{}
	opts := RestoreOptions{Repo: r, App: "chat", Root: root, PGData: "/x/pgdata", Dumps: true,
		KeepSettings: []string{"/etc/chat/settings[1].py", "/etc/chat/absent.conf"},
		Installed:    func() []string { return []string{"15"} },
		Versions:     []Version{{Name: "app", Command: []string{"echo", "chat 2.2"}}, {Name: "os", Command: []string{"echo", "Debian 12"}}},
		Out:          &out}
	f.wire(&opts)
	res, err := Restore(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.db) != 1 || f.db[0].RestorePoint.Name != p.RestorePoint.Name || !f.db[0].Time.IsZero() || f.db[0].PGData != "/x/pgdata" {
		t.Errorf("database requests %+v", f.db)
	}
	if len(f.files) != 1 || f.files[0].Target != root || strings.Join(f.files[0].Exclude, " ") != `/etc/chat/settings\[1].py` {
		t.Errorf("files requests %+v", f.files)
	}
	if strings.Join(f.dumps, " ") != "_globals chat" {
		t.Errorf("dumps %v", f.dumps)
	}
	if strings.Join(res.Kept, " ") != "/etc/chat/settings[1].py" || len(res.Parts) != 4 || len(res.Warnings) != 1 {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(out.String(), `warning: version app differs: recorded "chat 2.1", now "chat 2.2"`) {
		t.Errorf("output:\n%s", out.String())
	}

	// --to TIME: the database to the time.
	f = &restoreJobs{}
	opts.To = RestoreTo{Time: rt0.Add(time.Hour)}
	f.wire(&opts)
	if _, err := Restore(t.Context(), opts); err != nil || len(f.db) != 1 || !f.db[0].Time.Equal(rt0.Add(time.Hour)) {
		t.Errorf("--to TIME: %v, %+v", err, f.db)
	}

	// PostgreSQL 16 recorded, 15 installed: refused, nothing run.
	p16 := point(0, "160004")
	f = &restoreJobs{}
	opts = RestoreOptions{Repo: appRepo(t, p16), App: "chat", Root: root, PGData: "/x/pgdata", Installed: func() []string { return []string{"15"} }}
	f.wire(&opts)
	_, err = Restore(t.Context(), opts)
	if err == nil || !strings.HasPrefix(err.Error(), "app point 20261122T130000Z was taken on PostgreSQL 16; a physical backup restores only on the same major") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v", err)
	}
	if len(f.db)+len(f.files) != 0 {
		t.Errorf("jobs ran after the refusal: %+v %+v", f.db, f.files)
	}
	// No --pgdata for a point with a cluster: told what to pass.
	opts.PGData = ""
	if _, err := Restore(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "--pgdata DIR") {
		t.Errorf("no pgdata: %v", err)
	}
	// Without the cluster (--no-cluster), the major does not matter.
	opts.SkipCluster = true
	if _, err := Restore(t.Context(), opts); err != nil || len(f.files) != 1 || len(f.db) != 0 {
		t.Errorf("files only: %v, %+v", err, f)
	}
	opts.SkipCluster = false

	// A failing database restore fails the restore, naming the part.
	f = &restoreJobs{fail: errors.New("no backup")}
	opts.PGData = "/x/pgdata"
	opts.Installed = func() []string { return []string{"16"} }
	f.wire(&opts)
	if _, err := Restore(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "database: no backup") || len(f.files) != 0 {
		t.Errorf("failing database: %v, %+v", err, f.files)
	}
}

// TestRestoreGlobals: with Dumps, the app point's globals are applied
// before its databases (listed last in the entry, as Backup stores
// them); NoGlobals skips them; a point without them is restored with a
// warning; a failure stops before any database.
func TestRestoreGlobals(t *testing.T) {
	p := point(0, "150010")
	p.RestorePoint = nil
	p.Dumps = []catalog.AppDump{{Database: "chat", ID: p.ID, Bytes: 10}, {Database: catalog.GlobalsDatabase, ID: p.ID, Bytes: 3}}
	opts := RestoreOptions{Repo: appRepo(t, p), App: "chat", Root: t.TempDir(), Dumps: true}
	f := &restoreJobs{}
	f.wire(&opts)
	res, err := Restore(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.dumps, " ") != "_globals chat" || len(res.Warnings) != 0 {
		t.Errorf("restored %v, warnings %q", f.dumps, res.Warnings)
	}
	var kinds []string
	for _, part := range res.Parts {
		kinds = append(kinds, part.Kind)
	}
	if g := res.Parts[1]; strings.Join(kinds, " ") != "files globals dump" || g.ID != p.ID || strings.Join(g.Globals.Created, " ") != "zulip" {
		t.Errorf("parts %+v", res.Parts)
	}

	f = &restoreJobs{failGlobals: errors.New("permission denied to create role")}
	f.wire(&opts)
	opts.Root = t.TempDir()
	if _, err := Restore(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "roles and tablespaces (--no-globals skips them): permission denied") || len(f.dumps) != 1 {
		t.Errorf("failing globals: %v, restored %v", err, f.dumps)
	}

	f = &restoreJobs{}
	f.wire(&opts)
	opts.Root, opts.NoGlobals = t.TempDir(), true
	if res, err := Restore(t.Context(), opts); err != nil || strings.Join(f.dumps, " ") != "chat" || len(res.Warnings) != 0 {
		t.Errorf("--no-globals: %v, restored %v, %+v", err, f.dumps, res)
	}

	old := point(0, "150010")
	old.RestorePoint = nil
	old.Dumps = p.Dumps[:1]
	var out bytes.Buffer
	f = &restoreJobs{}
	opts = RestoreOptions{Repo: appRepo(t, old), App: "chat", Root: t.TempDir(), Dumps: true, Out: &out}
	f.wire(&opts)
	if _, err := Restore(t.Context(), opts); err != nil || strings.Join(f.dumps, " ") != "chat" || !strings.Contains(out.String(), "warning: app point 20261122T130000Z stores no roles") {
		t.Errorf("point without globals: %v, restored %v:\n%s", err, f.dumps, out.String())
	}
}
