package retention

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

// What an app point names stays: its dump and snapshot, which the
// policies alone drop, and the newest backup ended before its restore
// point (b2, with the WAL from its start); the app point itself stays.
func TestRunKeepsWhatAppPointsName(t *testing.T) {
	f := newFixture(t)
	w := f.world()
	r := repo.New(f.m, nil)
	ctx := t.Context()
	snaps, _, err := r.ListSnapshots(ctx, "up")
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots %v, %v", snaps, err)
	}
	at := w.b2.StartTime.Add(2 * time.Minute)
	id, _, err := r.ReserveAppID(ctx, "shop", at)
	if err != nil {
		t.Fatal(err)
	}
	a := &catalog.App{ID: id, Format: catalog.AppFormat, App: "shop", StartTime: at, EndTime: at,
		RestorePoint: &catalog.AppRestorePoint{Name: "pitr_app_shop_" + id, LSN: fmt.Sprintf("0/%X", 5*seg+200), Timeline: 1},
		Snapshots:    []catalog.AppSnapshot{{Set: "up", ID: snaps[0].ID}},
		Dumps:        []catalog.AppDump{{Database: "app", ID: w.oldDump}}}
	if err := r.SaveApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	o := options(f)
	o.Backups = Policy{KeepLast: 1}
	res, err := Run(ctx, r, o)
	if err != nil {
		t.Fatal(err)
	}
	dumpEntry, _ := catalog.DumpEntryKey("app", w.oldDump)
	snapEntry, _ := catalog.SnapshotEntryKey("up", snaps[0].ID)
	appEntry, _ := catalog.AppEntryKey("shop", id)
	if !f.has(dumpEntry) || !f.has(snapEntry) || !f.has(appEntry) {
		t.Errorf("named dump %v, named snapshot %v, app point %v: want all kept", f.has(dumpEntry), f.has(snapEntry), f.has(appEntry))
	}
	if f.has(catalog.BackupEntryKey(w.b1.ID)) || !f.has(catalog.BackupEntryKey(w.b2.ID)) || !f.has(w.tl1seg5) {
		t.Errorf("b1 %v, b2 %v, its WAL %v: want b1 deleted, b2 and its WAL kept", f.has(catalog.BackupEntryKey(w.b1.ID)), f.has(catalog.BackupEntryKey(w.b2.ID)), f.has(w.tl1seg5))
	}
	for _, d := range res.Decisions {
		named := d.Item.ID == w.b2.ID && d.Item.Kind == KindBackup || d.Item.ID == w.oldDump && d.Item.Group == "app" || d.Item.ID == snaps[0].ID && d.Item.Kind == KindSnapshot
		if named != slices.Contains(d.Reasons, ReasonApp) {
			t.Errorf("decision %+v: kept for an app point %v, want %v", d, !named, named)
		}
	}
}
