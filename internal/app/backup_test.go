package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// fakeJobs records the order the jobs were called in.
type fakeJobs struct {
	t       *testing.T
	calls   []string
	marker  string // the before hook creates it
	failSet string
}

func (f *fakeJobs) options(r *repo.Repo) Options {
	now := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	return Options{
		Repo: r, App: "mastodon", PitrVersion: "test", Now: func() time.Time { return now },
		Cluster: true,
		RestorePoint: func(_ context.Context, name string) (*catalog.AppRestorePoint, string, error) {
			f.calls = append(f.calls, "point "+name)
			return &catalog.AppRestorePoint{Name: name, LSN: "0/3000090", Time: now, Timeline: 1, SystemID: "7", PGVersion: 150018,
				WALSegment: "000000010000000000000003"}, "15.18", nil
		},
		WaitWAL: func(_ context.Context, seg string) error {
			f.calls = append(f.calls, "wal "+seg)
			if f.exists() {
				f.t.Error("the before hook ran before the restore point's WAL was archived")
			}
			return nil
		},
		Sets: []string{"uploads", "env"},
		Snapshot: func(_ context.Context, set string) (*catalog.Snapshot, error) {
			f.calls = append(f.calls, "snapshot "+set)
			if !f.exists() {
				f.t.Errorf("snapshot of %s before the before hook ran", set)
			}
			if set == f.failSet {
				return nil, errors.New("permission denied")
			}
			return &catalog.Snapshot{Set: set, ID: "20261201T140001Z", Files: 2, Bytes: 10}, nil
		},
		Dumps: []string{"mastodon"},
		Dump: func(_ context.Context, db string) (*catalog.Dump, error) {
			f.calls = append(f.calls, "dump "+db)
			return &catalog.Dump{Database: db, ID: "20261201T140002Z", Bytes: 99}, nil
		},
		Before:   []Hook{{Name: "redis", Command: []string{"sh", "-c", "echo saving; touch " + f.marker}}},
		After:    []Hook{{Name: "resume", Command: []string{"true"}}},
		Versions: []Version{{Name: "app", Command: []string{"echo", "  v4.2.1\n"}}, {Name: "broken", Command: []string{"sh", "-c", "echo no such file >&2; exit 3"}}},
	}
}

func (f *fakeJobs) exists() bool { _, err := os.Stat(f.marker); return err == nil }

func newFake(t *testing.T) (*fakeJobs, *repo.Repo, storage.Storage) {
	m := storagetest.NewMemory()
	return &fakeJobs{t: t, marker: filepath.Join(t.TempDir(), "saved")}, repo.New(m, nil), m
}

// appKeys lists the objects under apps/.
func appKeys(t *testing.T, st storage.Storage) []string {
	var keys []string
	if err := st.List(t.Context(), catalog.AppsPrefix, func(oi storage.ObjectInfo) error { keys = append(keys, oi.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestBackupOrder(t *testing.T) {
	f, r, _ := newFake(t)
	a, err := Backup(t.Context(), f.options(r))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"point pitr_app_mastodon_20261201T140000Z", "wal 000000010000000000000003", "snapshot uploads", "snapshot env", "dump mastodon"}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls %q\nwant  %q", f.calls, want)
	}
	got, err := r.App(t.Context(), "mastodon", "latest")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Errorf("stored %+v\nreturned %+v", got, a)
	}
	if a.RestorePoint == nil || a.RestorePoint.Name != "pitr_app_mastodon_20261201T140000Z" || len(a.Snapshots) != 2 || a.Snapshots[1].Set != "env" ||
		len(a.Dumps) != 1 || a.Dumps[0].Bytes != 99 {
		t.Errorf("entry %+v", a)
	}
	if a.Versions["app"] != "v4.2.1" || a.Versions["postgresql"] != "15.18" || a.Versions["postgresql_num"] != "150018" ||
		!strings.HasPrefix(a.Versions["broken"], "error: exit status 3: no such file") {
		t.Errorf("versions %q", a.Versions)
	}
	if len(a.Hooks) != 2 || a.Hooks[0].Name != "redis" || a.Hooks[0].When != "before" || a.Hooks[1].When != "after" || a.Hooks[1].ExitCode != 0 {
		t.Errorf("hooks %+v", a.Hooks)
	}
}

// A failing before hook ends the backup: no snapshot, no app entry, no
// reservation left; the after hooks still run.
func TestBackupBeforeHookFails(t *testing.T) {
	f, r, st := newFake(t)
	opts := f.options(r)
	after := filepath.Join(t.TempDir(), "after")
	opts.Before = []Hook{{Name: "redis", Command: []string{"false"}}}
	opts.After = []Hook{{Name: "resume", Command: []string{"touch", after}}}
	_, err := Backup(t.Context(), opts)
	if err == nil || err.Error() != "app backup mastodon: before hook redis: exit status 1" {
		t.Fatalf("err = %v", err)
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "snapshot") || strings.HasPrefix(c, "dump") {
			t.Errorf("%s after a failed before hook", c)
		}
	}
	if keys := appKeys(t, st); len(keys) != 0 {
		t.Errorf("left %q", keys)
	}
	if _, err := os.Stat(after); err != nil {
		t.Errorf("after hook did not run: %v", err)
	}
}

// A failing file set: no app entry; the snapshots taken stay (they are
// the files job's, not ours).
func TestBackupFileSetFails(t *testing.T) {
	f, r, st := newFake(t)
	f.failSet = "env"
	_, err := Backup(t.Context(), f.options(r))
	if err == nil || err.Error() != "app backup mastodon: file set env: permission denied" {
		t.Fatalf("err = %v", err)
	}
	if keys := appKeys(t, st); len(keys) != 0 {
		t.Errorf("left %q", keys)
	}
	if f.calls[len(f.calls)-1] != "snapshot env" {
		t.Errorf("went on after the failed set: %q", f.calls)
	}
}

// An after hook's failure fails an otherwise good backup; a hook past its
// timeout is killed and fails.
func TestBackupAfterHookFails(t *testing.T) {
	f, r, st := newFake(t)
	opts := f.options(r)
	opts.After = []Hook{{Name: "slow", Command: []string{"sleep", "60"}, Timeout: 50 * time.Millisecond}}
	_, err := Backup(t.Context(), opts)
	if err == nil || err.Error() != "app backup mastodon: after hook slow: killed after its timeout 50ms" {
		t.Fatalf("err = %v", err)
	}
	if keys := appKeys(t, st); len(keys) != 0 {
		t.Errorf("left %q", keys)
	}
}

// Without the cluster, no restore point and no WAL wait; dumps record the
// server's version.
func TestBackupWithoutCluster(t *testing.T) {
	f, r, _ := newFake(t)
	opts := f.options(r)
	opts.Cluster = false
	opts.Before = nil
	opts.Sets = nil
	opts.ServerVersion = func(context.Context) (string, int, error) { return "16.4", 160004, nil }
	a, err := Backup(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if a.RestorePoint != nil || !reflect.DeepEqual(f.calls, []string{"dump mastodon"}) || a.Versions["postgresql_num"] != "160004" {
		t.Errorf("entry %+v, calls %q", a, f.calls)
	}
}

// A failing restore point: nothing left, no hook run.
func TestBackupRestorePointFails(t *testing.T) {
	f, r, st := newFake(t)
	opts := f.options(r)
	opts.RestorePoint = func(context.Context, string) (*catalog.AppRestorePoint, string, error) {
		return nil, "", errors.New("permission denied for function pg_create_restore_point")
	}
	if _, err := Backup(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "pg_create_restore_point") {
		t.Fatalf("err = %v", err)
	}
	if f.exists() || len(appKeys(t, st)) != 0 {
		t.Error("hook ran or objects left after a failed restore point")
	}
}

func TestFind(t *testing.T) {
	f, r, _ := newFake(t)
	opts := f.options(r)
	a, err := Backup(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.App = "zulip"
	_ = os.Remove(f.marker)
	z, err := Backup(t.Context(), opts) // same second, other app: the same id
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]*catalog.App{"mastodon/" + a.ID: a, "zulip/latest": z, "zulip": z} {
		if got, err := Find(t.Context(), r, ref); err != nil || got.App != want.App || got.ID != want.ID {
			t.Errorf("Find(%s) = %+v, %v", ref, got, err)
		}
	}
	if _, err := Find(t.Context(), r, a.ID); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "mastodon/"+a.ID+", zulip/"+a.ID) {
		t.Errorf("ambiguous id: %v", err)
	}
	for _, ref := range []string{"20261201T150000Z", "Nope/x", "mastodon/x", "nosuch"} {
		if _, err := Find(t.Context(), r, ref); err == nil {
			t.Errorf("Find(%s) found something", ref)
		}
	}
}

// A cancelled backup (the daemon stopping) still runs the after hooks.
func TestBackupCancelledRunsAfterHooks(t *testing.T) {
	f, r, st := newFake(t)
	opts := f.options(r)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opts.Snapshot = func(ctx context.Context, set string) (*catalog.Snapshot, error) {
		cancel()
		return nil, ctx.Err()
	}
	after := filepath.Join(t.TempDir(), "resumed")
	opts.After = []Hook{{Name: "resume", Command: []string{"touch", after}}}
	if _, err := Backup(ctx, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(after); err != nil {
		t.Errorf("after hook did not run after the cancel: %v", err)
	}
	if keys := appKeys(t, st); len(keys) != 0 {
		t.Errorf("left %q", keys)
	}
}

// With dumps, the globals are stored once, after the dumps, and listed
// among them; their failure fails the backup (no app entry). Without
// dumps they are not taken.
func TestBackupGlobals(t *testing.T) {
	f, r, _ := newFake(t)
	opts := f.options(r)
	opts.Globals = func(context.Context) (*catalog.Dump, error) {
		f.calls = append(f.calls, "globals")
		return &catalog.Dump{Database: catalog.GlobalsDatabase, ID: "20261201T140003Z", Bytes: 7}, nil
	}
	a, err := Backup(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.calls[len(f.calls)-2:]; !reflect.DeepEqual(got, []string{"dump mastodon", "globals"}) {
		t.Errorf("calls %q", f.calls)
	}
	dbs, g := SplitGlobals(a.Dumps)
	if len(dbs) != 1 || dbs[0].Database != "mastodon" || g == nil || g.ID != "20261201T140003Z" || g.Bytes != 7 {
		t.Errorf("dumps %+v", a.Dumps)
	}

	f, r, st := newFake(t)
	opts = f.options(r)
	opts.Globals = func(context.Context) (*catalog.Dump, error) { return nil, errors.New("must be superuser") }
	_, err = Backup(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "roles and tablespaces") || !strings.Contains(err.Error(), "dump_globals: false") {
		t.Errorf("err = %v", err)
	}
	if keys := appKeys(t, st); len(keys) != 0 {
		t.Errorf("left %q", keys)
	}

	f, r, _ = newFake(t)
	opts = f.options(r)
	opts.Dumps = nil
	opts.Globals = func(context.Context) (*catalog.Dump, error) { t.Error("globals taken without dumps"); return nil, nil }
	if a, err := Backup(t.Context(), opts); err != nil || len(a.Dumps) != 0 {
		t.Errorf("no dumps: %v, %+v", err, a)
	}
}
