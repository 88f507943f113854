//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/wal"
)

func (r *rig) appPoints(extra []string) []*catalog.App {
	r.t.Helper()
	var out struct{ Apps []*catalog.App }
	if err := json.Unmarshal([]byte(r.mustRun(extra, "app", "list", "--json")), &out); err != nil {
		r.t.Fatal(err)
	}
	return out.Apps
}

// writeAppConfig writes a config with one file set (uploads, at dir) and
// the app shop (the cluster, the dump of app, the uploads) with before
// hook command; it returns PITR_CONFIG=file.
func writeAppConfig(t *testing.T, dir, name string, hook string) string {
	t.Helper()
	cfg := filepath.Join(testenv.Dir(t), name)
	y := `files:
  - name: uploads
    paths: [` + dir + `]
apps:
  - name: shop
    database:
      cluster: true
      dumps: [app]
    files: [uploads]
    hooks:
      before:
        - name: flush
          command: [sh, -c, "` + hook + `"]
    versions:
      os: [uname, -s]
      broken: ["false"]
`
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return "PITR_CONFIG=" + cfg
}

// TestAppBackupMinIO: pitr app backup of an app with the cluster (real
// archiving through wal-push to MinIO), one file set and one dump gives
// one app point, which app list and app show describe; a failing before
// hook exits 1 and lists nothing new.
func TestAppBackupMinIO(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	appDB(t, c)
	uploads := filepath.Join(t.TempDir(), "uploads")
	writeTreeFile(t, filepath.Join(uploads, "a", "cat.jpg"), randomData(1, 200<<10), 0o644)
	writeTreeFile(t, filepath.Join(uploads, "b.txt"), []byte("hello"), 0o640)
	env := append(backupEnv(c), writeAppConfig(t, uploads, "pitr.yaml", "echo hook says hi"))

	out, stderr, code := r.runEnv(env, "app", "backup", "shop")
	if code != 0 {
		t.Fatalf("app backup: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(out, "app point shop/") || !strings.Contains(stderr, "hook says hi") {
		t.Errorf("app backup printed %q; the hook's output is not logged:\n%s", out, stderr)
	}
	points := r.appPoints(env)
	if len(points) != 1 {
		t.Fatalf("%d app points after one backup", len(points))
	}
	p := points[0]
	rp := p.RestorePoint
	if rp == nil || rp.Name != "pitr_app_shop_"+p.ID || rp.LSN == "" || rp.Timeline != 1 || rp.PGVersion/10000 != 15 || rp.SystemID == "" || rp.Time.IsZero() {
		t.Fatalf("restore point %+v", rp)
	}
	if objs, err := wal.ListWAL(t.Context(), r.store(), rp.WALSegment); err != nil || len(objs) == 0 {
		t.Errorf("restore point segment %s not in the repository: %v", rp.WALSegment, err)
	}
	if len(p.Snapshots) != 1 || p.Snapshots[0].Set != "uploads" || p.Snapshots[0].Files != 2 || len(p.Dumps) != 2 || p.Dumps[0].Database != "app" || p.Dumps[1].Database != "_globals" {
		t.Errorf("parts %+v %+v", p.Snapshots, p.Dumps)
	}
	if !strings.HasPrefix(p.Versions["postgresql"], "15") || p.Versions["os"] != "Linux" || !strings.HasPrefix(p.Versions["broken"], "error: ") {
		t.Errorf("versions %q", p.Versions)
	}
	// The snapshot and dump it names are the ordinary ones.
	if ds := r.dumpsOf(env, "app"); len(ds) != 1 || ds[0].ID != p.Dumps[0].ID {
		t.Errorf("dumps %+v, app point names %s", ds, p.Dumps[0].ID)
	}
	for _, ref := range []string{p.ID, "shop/" + p.ID, "shop"} {
		show := r.mustRun(env, "app", "show", ref)
		for _, want := range []string{"restore point " + rp.Name, "uploads", "os: Linux", "postgresql: 15", "before flush: exit 0"} {
			if !strings.Contains(show, want) {
				t.Errorf("app show %s lacks %q:\n%s", ref, want, show)
			}
		}
	}
	// show needs no identity.
	if out, stderr, code := r.runEnv(append(env, "PITR_AGE_IDENTITY_FILE=/nonexistent"), "app", "show", p.ID); code != 0 || !strings.Contains(out, rp.LSN) {
		t.Errorf("app show without the identity: exit %d %s", code, stderr)
	}

	// A failing before hook: exit 1, no app point; no dump taken.
	failing := append(backupEnv(c), writeAppConfig(t, uploads, "failing.yaml", "echo cannot save >&2; exit 7"))
	_, stderr, code = r.runEnv(failing, "app", "backup", "shop")
	if code != 1 || !strings.Contains(stderr, "before hook flush: exit status 7") {
		t.Fatalf("failing hook: exit %d\n%s", code, stderr)
	}
	if points := r.appPoints(env); len(points) != 1 {
		t.Errorf("%d app points after a failed backup", len(points))
	}
	if ds := r.dumps(env); len(ds) != 2 {
		t.Errorf("%d dumps after a failed before hook", len(ds))
	}
	if list := r.mustRun(env, "app", "list"); strings.Count(list, "shop") != 1 {
		t.Errorf("app list:\n%s", list)
	}
}

// TestDaemonAppSchedule: an app with a schedule is the daemon's job
// "app <name>": it takes the app point when due.
func TestDaemonAppSchedule(t *testing.T) {
	r := newRig(t, "local")
	c := r.cluster(nil)
	appDB(t, c)
	uploads := filepath.Join(t.TempDir(), "uploads")
	writeTreeFile(t, filepath.Join(uploads, "b.txt"), []byte("hello"), 0o640)
	cfg := filepath.Join(testenv.Dir(t), "pitr.yaml")
	y := "files:\n  - name: uploads\n    paths: [" + uploads + "]\napps:\n  - name: shop\n    database: {cluster: true}\n    files: [uploads]\n" +
		"    schedule: \"" + cronAt(time.Now().Add(3*time.Second)) + "\"\n"
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := scratch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env := append(backupEnv(c), "PITR_CONFIG="+cfg, "PITR_DAEMON_STREAM=false", "PITR_BACKUP_SCHEDULE=", "PITR_DUMP_SCHEDULE=",
		"PITR_FILES_SCHEDULE=", fmt.Sprintf("PITR_METRICS_ADDR=127.0.0.1:%d", port))
	r.startDaemon(t, env...)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var points []*catalog.App
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		// No repository until the first job writes one: app list fails then.
		if out, _, code := r.runEnv(env, "app", "list", "--json"); code == 0 {
			var l struct{ Apps []*catalog.App }
			if err := json.Unmarshal([]byte(out), &l); err != nil {
				t.Fatal(err)
			}
			points = l.Apps
		}
		return len(points) == 1, fmt.Sprintf("%d app points", len(points))
	})
	if points[0].RestorePoint == nil || len(points[0].Snapshots) != 1 {
		t.Fatalf("app point of the scheduled run: %+v", points[0])
	}
	_, body, _ := tryGet(base + "/metrics")
	if runs, fails := metricValue(body, `pitr_job_runs_total{job="app shop"}`), metricValue(body, `pitr_job_failures_total{job="app shop"}`); runs != 1 || fails != 0 {
		t.Errorf("app shop runs %v, failures %v; want 1, 0", runs, fails)
	}
}
