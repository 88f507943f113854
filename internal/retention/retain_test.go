package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

const seg = 16 << 20

// fixture is a repository in memory, with a store clock.
type fixture struct {
	t   *testing.T
	m   *storagetest.Memory
	now time.Time
}

var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, m: storagetest.NewMemory(), now: day0}
	f.m.Now = func() time.Time { return f.now }
	return f
}

func (f *fixture) put(key, body string) {
	f.t.Helper()
	if err := f.m.Put(f.t.Context(), key, strings.NewReader(body)); err != nil {
		f.t.Fatal(err)
	}
}

func sum(s string) string { return strings.Repeat(s, 64)[:64] }

func (f *fixture) segment(tli wal.Timeline, segNo uint64) string {
	f.t.Helper()
	return f.walFile(wal.SegmentFileName(tli, segNo, seg))
}

func (f *fixture) walFile(name string) string {
	f.t.Helper()
	key, err := catalog.WALKey(name, sum("a"), true)
	if err != nil {
		f.t.Fatal(err)
	}
	f.put(key, "wal:"+name)
	return key
}

func (f *fixture) chunk(tli wal.Timeline, segNo uint64, end int64) string {
	f.t.Helper()
	key, err := catalog.StreamChunkKey(wal.SegmentFileName(tli, segNo, seg), 0, end, seg, sum("b"), true)
	if err != nil {
		f.t.Fatal(err)
	}
	f.put(key, "chunk")
	return key
}

// backup stores a complete backup started at f.now, on tli, of segment s.
func (f *fixture) backup(tli wal.Timeline, s uint64) *catalog.Backup {
	f.t.Helper()
	id := catalog.BackupID(f.now)
	b := &catalog.Backup{ID: id, Format: catalog.FormatVersion, Timeline: uint32(tli), WALSegmentSize: seg, Encrypted: true,
		StartTime: f.now, EndTime: f.now.Add(time.Minute),
		StartWAL: wal.SegmentFileName(tli, s, seg), EndWAL: wal.SegmentFileName(tli, s, seg),
		StartLSN: fmt.Sprintf("0/%X", s*seg), EndLSN: fmt.Sprintf("0/%X", s*seg+100)}
	res, _ := catalog.BackupReservationKey(id)
	f.put(res, "{}")
	for _, name := range []string{"base.tar", "backup_manifest"} {
		key, _ := catalog.BackupPartKey(id, name, true)
		b.Parts = append(b.Parts, catalog.Part{Name: name, Key: key, SHA256: sum("0"), Stored: 4})
		f.put(key, "part")
	}
	f.put(catalog.BackupEntryKey(id), string(catalog.MarshalBackup(b)))
	return b
}

func (f *fixture) dump(db string, complete bool) string {
	f.t.Helper()
	id := catalog.BackupID(f.now)
	res, _ := catalog.DumpReservationKey(db, id)
	obj, _ := catalog.DumpObjectKey(db, id, true)
	f.put(res, "{}")
	f.put(obj, "dump")
	if complete {
		entry, _ := catalog.DumpEntryKey(db, id)
		f.put(entry, string(catalog.MarshalDump(&catalog.Dump{ID: id, Format: catalog.FormatVersion, Database: db, Key: obj,
			StartTime: f.now, EndTime: f.now, Encrypted: true, SHA256: sum("c")})))
	}
	return id
}

func (f *fixture) snapshot(set string) string {
	f.t.Helper()
	id := catalog.BackupID(f.now)
	res, _ := catalog.SnapshotReservationKey(set, id)
	man, _ := catalog.ManifestKey(set, id, true)
	entry, _ := catalog.SnapshotEntryKey(set, id)
	f.put(res, "{}")
	f.put(man, "manifest")
	f.put(entry, string(catalog.MarshalSnapshot(&catalog.Snapshot{ID: id, Format: catalog.FormatVersion, Set: set, Kind: "uploads",
		StartTime: f.now, EndTime: f.now, Encrypted: true, Manifest: catalog.Part{Name: "manifest", Key: man, SHA256: sum("d")}})))
	return id
}

func (f *fixture) has(key string) bool {
	_, err := f.m.Stat(f.t.Context(), key)
	return err == nil
}

func (f *fixture) count() int {
	n := 0
	_ = f.m.List(f.t.Context(), "", func(storage.ObjectInfo) error { n++; return nil })
	return n
}

// world stores three days of backups and WAL with a timeline switch:
// timeline 1 segments 1..8, timeline 2 (branching in segment 7) 7..10,
// a .backup and a .partial file, stream chunks, two databases' dumps, a
// file set, pin records, reports and leftovers.
type world struct {
	b1, b2, b3                *catalog.Backup
	history, tl1seg1, tl1seg5 string
	backupFile, tl2seg7       string
	covered, uncovered        string
	oldDump, youngBackupRes   string
	leftoverDump              string
}

func (f *fixture) world() *world {
	w := &world{}
	r := repo.New(f.m, nil)
	for i := uint64(1); i <= 8; i++ {
		k := f.segment(1, i)
		switch i {
		case 1:
			w.tl1seg1 = k
		case 5:
			w.tl1seg5 = k
		}
		if i == 2 {
			w.b1 = f.backup(1, 2)
			w.backupFile = f.walFile(wal.SegmentFileName(1, 2, seg) + ".00000028.backup")
			w.oldDump = f.dump("app", true)
			f.dump("shop", true)
			f.now = f.now.Add(time.Minute)
			w.leftoverDump = f.dump("app", false) // interrupted
			f.snapshot("up")
			ref := catalog.PinRef{Kind: catalog.PinBackup, ID: w.b1.ID}
			for _, pinned := range []bool{true, false} {
				if err := r.SavePin(f.t.Context(), &catalog.Pin{PinRef: ref, Pinned: pinned, At: f.now}); err != nil {
					f.t.Fatal(err)
				}
			}
		}
		if i == 5 {
			f.now = f.now.Add(24 * time.Hour)
			w.b2 = f.backup(1, 5)
			f.dump("app", true)
			f.snapshot("up")
		}
		f.now = f.now.Add(time.Hour)
	}
	f.walFile(wal.SegmentFileName(1, 7, seg) + ".partial")
	w.history = f.walFile("00000002.history")
	for i := uint64(7); i <= 10; i++ {
		k := f.segment(2, i)
		if i == 7 {
			w.tl2seg7 = k
		}
		if i == 9 {
			f.now = f.now.Add(24 * time.Hour)
			w.b3 = f.backup(2, 9)
			f.dump("app", true)
		}
		f.now = f.now.Add(time.Hour)
	}
	w.covered = f.chunk(2, 10, 4096)
	w.uncovered = f.chunk(2, 11, 8192)
	for i := range 32 {
		rep := &catalog.Report{Kind: catalog.ReportVerify, Started: day0.Add(time.Duration(i) * time.Hour), OK: true}
		if err := r.SaveReport(f.t.Context(), rep); err != nil {
			f.t.Fatal(err)
		}
	}
	// A backup that started an hour ago and is still running.
	f.now = f.now.Add(48 * time.Hour)
	w.youngBackupRes, _ = catalog.BackupReservationKey(catalog.BackupID(f.now.Add(-time.Hour)))
	f.put(w.youngBackupRes, "{}")
	return w
}

func options(f *fixture) Options {
	return Options{Backups: Policy{KeepLast: 2}, Dumps: Policy{KeepLast: 1}, Files: Policy{KeepLast: 1},
		DoBackups: true, DoDumps: true, DoFiles: true, Now: f.now, Grace: 24 * time.Hour}
}

func TestRunDryRunEqualsRun(t *testing.T) {
	f := newFixture(t)
	w := f.world()
	r := repo.New(f.m, nil)
	ctx := t.Context()
	o := options(f)
	before := f.count()
	o.DryRun = true
	dry, err := Run(ctx, r, o)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if f.count() != before {
		t.Fatalf("dry run changed the store: %d objects, then %d", before, f.count())
	}
	o.DryRun = false
	real, err := Run(ctx, r, o)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	dry.DryRun = false
	dj, _ := json.Marshal(dry)
	rj, _ := json.Marshal(real)
	if string(dj) != string(rj) {
		t.Errorf("run differs from its dry run:\ndry %s\nrun %s", dj, rj)
	}

	want := map[string]bool{
		catalog.BackupEntryKey(w.b1.ID): false, catalog.BackupEntryKey(w.b2.ID): true, catalog.BackupEntryKey(w.b3.ID): true,
		w.tl1seg1: false, w.backupFile: false, w.tl1seg5: true, w.tl2seg7: true,
		w.history: true, w.covered: false, w.uncovered: true, w.youngBackupRes: true,
	}
	oldRes, _ := catalog.BackupReservationKey(w.b1.ID)
	want[oldRes] = false
	dk, _ := catalog.DumpEntryKey("app", w.oldDump)
	want[dk] = false
	lk, _ := catalog.DumpReservationKey("app", w.leftoverDump)
	want[lk] = false
	for key, keep := range want {
		if f.has(key) != keep {
			t.Errorf("%s: stored %v, want %v", key, f.has(key), keep)
		}
	}
	for _, c := range []struct {
		name string
		got  *KindResult
		want KindResult
	}{
		{"backups", real.Backups, KindResult{Keep: 2, Delete: 1, Bytes: 8 + 2 + int64(len(catalog.MarshalBackup(w.b1)))}},
		{"wal", real.WAL, KindResult{Keep: 10, Delete: 5}}, // deleted: tl1 1-4, the .backup
		{"streamed", real.Streamed, KindResult{Delete: 1, Bytes: 5}},
		{"leftovers", real.Leftovers, KindResult{Delete: 1, Bytes: 6}}, // "{}", "dump"
		{"pins", real.Pins, KindResult{Delete: 2}},
		{"reports", real.Reports, KindResult{Delete: 2}},
	} {
		g := *c.got
		if c.name == "wal" || c.name == "pins" || c.name == "reports" {
			g.Bytes = 0
		}
		if g != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, g, c.want)
		}
	}
	if real.Dumps.Keep != 2 || real.Dumps.Delete != 2 || real.Files.Keep != 1 || real.Files.Delete != 1 {
		t.Errorf("dumps %+v, files %+v; want keep 2 delete 2, keep 1 delete 1", real.Dumps, real.Files)
	}

	// The window announced is the window the repository now has.
	l, err := r.ListBackups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := r.WALIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := repo.Windows(l.Check(ix)); !reflect.DeepEqual(got, real.Windows) || len(got) == 0 {
		t.Errorf("windows after retain %v, announced %v", got, real.Windows)
	}

	// A second run finds nothing more to delete.
	again, err := Run(ctx, r, o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Backups.Delete+again.WAL.Delete+again.Dumps.Delete+again.Files.Delete+again.Leftovers.Delete+again.Pins.Delete != 0 {
		t.Errorf("second run deletes more: %+v", again)
	}
}

func TestRunPinnedAndNewest(t *testing.T) {
	f := newFixture(t)
	w := f.world()
	r := repo.New(f.m, nil)
	ctx := t.Context()
	if err := r.SavePin(ctx, &catalog.Pin{PinRef: catalog.PinRef{Kind: catalog.PinBackup, ID: w.b1.ID}, Pinned: true, At: f.now}); err != nil {
		t.Fatal(err)
	}
	o := options(f)
	o.Backups = Policy{KeepWithin: time.Hour} // keeps none by itself
	res, err := Run(ctx, r, o)
	if err != nil {
		t.Fatal(err)
	}
	if !f.has(catalog.BackupEntryKey(w.b1.ID)) || !f.has(catalog.BackupEntryKey(w.b3.ID)) || f.has(catalog.BackupEntryKey(w.b2.ID)) {
		t.Errorf("want b1 (pinned) and b3 (newest) kept, b2 deleted: %+v", res.Backups)
	}
	// b1 is kept, so all WAL from its start stays; segment 1 does not.
	if f.has(w.tl1seg1) || !f.has(w.backupFile) || !f.has(w.tl1seg5) {
		t.Errorf("WAL: seg 1 %v, .backup %v, seg 5 %v; want false, true, true", f.has(w.tl1seg1), f.has(w.backupFile), f.has(w.tl1seg5))
	}
}

// A running backup (an incomplete one within the grace) keeps the WAL
// stored since it started, whatever the policy.
func TestRunKeepsWALOfRunningBackup(t *testing.T) {
	f := newFixture(t)
	for i := uint64(1); i <= 3; i++ {
		f.segment(1, i)
		f.now = f.now.Add(time.Hour)
	}
	res, _ := catalog.BackupReservationKey(catalog.BackupID(f.now))
	f.put(res, "{}") // a backup starts
	k4 := f.segment(1, 4)
	f.now = f.now.Add(time.Hour)
	b := f.backup(1, 5) // another backup starts later and completes first
	f.segment(1, 5)
	o := Options{Backups: Policy{KeepLast: 1}, DoBackups: true, Now: f.now, Grace: 24 * time.Hour}
	if _, err := Run(t.Context(), repo.New(f.m, nil), o); err != nil {
		t.Fatal(err)
	}
	if !f.has(k4) || !f.has(res) || !f.has(catalog.BackupEntryKey(b.ID)) {
		t.Errorf("segment 4 %v, running reservation %v, backup %v: want all stored", f.has(k4), f.has(res), f.has(catalog.BackupEntryKey(b.ID)))
	}
	if f.has(f.segKey(1, 1)) {
		t.Errorf("segment 1, stored before the running backup started, was kept")
	}
}

func (f *fixture) segKey(tli wal.Timeline, s uint64) string {
	k, _ := catalog.WALKey(wal.SegmentFileName(tli, s, seg), sum("a"), true)
	return k
}

// refusing fails deletes of keys matching match with err.
type refusing struct {
	storage.Storage
	match func(string) bool
	err   error
}

func (s refusing) Delete(ctx context.Context, key string) error {
	if s.match(key) {
		return fmt.Errorf("delete %s: %w", key, s.err)
	}
	return s.Storage.Delete(ctx, key)
}

func TestRunLockedAndDenied(t *testing.T) {
	f := newFixture(t)
	w := f.world()
	ctx := t.Context()
	entry := catalog.BackupEntryKey(w.b1.ID)
	st := refusing{Storage: f.m, match: func(k string) bool { return k == entry || strings.HasPrefix(k, "dumps/") }, err: storage.ErrLocked}
	res, err := Run(ctx, repo.New(st, nil), options(f))
	if err != nil {
		t.Fatalf("locked objects are no error: %v", err)
	}
	if res.Locked == 0 || !f.has(entry) {
		t.Errorf("locked %d, entry stored %v; want some, true", res.Locked, f.has(entry))
	}
	if !f.has(w.tl1seg1) {
		t.Errorf("the WAL of a backup whose entry is locked was deleted")
	}

	g := newFixture(t)
	g.world()
	denied := refusing{Storage: g.m, match: func(string) bool { return true }, err: storage.Permanent(errors.New("AccessDenied"))}
	before := g.count()
	_, err = Run(ctx, repo.New(denied, nil), options(g))
	if !errors.Is(err, ErrCannotDelete) {
		t.Fatalf("denied deletes: %v, want ErrCannotDelete", err)
	}
	if g.count() != before {
		t.Errorf("objects changed")
	}
}

// pinning lists pins/ as st does, and pins ref just before the n-th listing.
type pinning struct {
	storage.Storage
	n     int
	calls int
	pin   func()
}

func (s *pinning) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if prefix == catalog.PinsPrefix {
		if s.calls++; s.calls == s.n {
			s.pin()
		}
	}
	return s.Storage.List(ctx, prefix, fn)
}

// An item pinned while retain plans is kept: retain reads the pins again
// before deleting, and plans again.
func TestRunPinnedWhilePlanning(t *testing.T) {
	f := newFixture(t)
	w := f.world()
	ctx := t.Context()
	st := &pinning{Storage: f.m, n: 2}
	r := repo.New(st, nil)
	st.pin = func() {
		if err := repo.New(f.m, nil).SavePin(ctx, &catalog.Pin{PinRef: catalog.PinRef{Kind: catalog.PinBackup, ID: w.b1.ID}, Pinned: true, At: f.now}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Run(ctx, r, options(f))
	if err != nil {
		t.Fatal(err)
	}
	if !f.has(catalog.BackupEntryKey(w.b1.ID)) || res.Backups.Delete != 0 || !f.has(w.backupFile) {
		t.Errorf("backup pinned while planning: entry stored %v, %+v, its WAL %v", f.has(catalog.BackupEntryKey(w.b1.ID)), res.Backups, f.has(w.backupFile))
	}
}

// On a store with Object Lock, locked objects are reported (with the end
// of their lock), not an error, and the kept chain's locks are extended.
func TestRunObjectLock(t *testing.T) {
	f := newFixture(t)
	f.m.LockFor = 7 * 24 * time.Hour
	w := f.world()
	ctx := t.Context()
	o := options(f)
	until := f.now.Add(30 * 24 * time.Hour)
	o.ExtendLocks = func(ctx context.Context, kept []*catalog.Backup, ix *wal.Index) (int, error) {
		return ExtendLocks(ctx, f.m, kept, ix, until)
	}
	res, err := Run(ctx, repo.New(f.m, nil), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Locked == 0 || res.LockedUntil.IsZero() || res.Extended == 0 {
		t.Errorf("locked %d until %v, extended %d: want all set", res.Locked, res.LockedUntil, res.Extended)
	}
	if !f.has(catalog.BackupEntryKey(w.b1.ID)) || !f.has(w.tl1seg1) {
		t.Errorf("a locked backup or its WAL was deleted")
	}
	got, err := f.m.LockedUntil(ctx, catalog.BackupEntryKey(w.b3.ID))
	if err != nil || got.Before(until) {
		t.Errorf("kept backup locked until %v (%v), want at least %v", got, err, until)
	}
}

// sealed stores segment segNo of tli as wal-receive seals it: two chunks,
// then the seal naming them. It returns the seal's key and the chunks'.
func (f *fixture) sealed(tli wal.Timeline, segNo uint64) (string, []string) {
	f.t.Helper()
	name := wal.SegmentFileName(tli, segNo, seg)
	s := &catalog.Seal{Format: catalog.FormatVersion, Segment: name, SegSize: seg, SHA256: sum("a")}
	var keys []string
	for _, r := range [][2]int64{{0, seg / 2}, {seg / 2, seg}} {
		key := mustKey(f.t)(catalog.StreamChunkKey(name, r[0], r[1], seg, sum("b"), true))
		f.put(key, "chunk")
		s.Chunks = append(s.Chunks, catalog.SealChunk{Key: key, Start: r[0], End: r[1]})
		keys = append(keys, key)
	}
	key := mustKey(f.t)(catalog.SealKey(name, s.SHA256))
	f.put(key, string(catalog.MarshalSeal(s)))
	return key, keys
}

// TestRunSealedSegments: a sealed segment's seal and chunks go together,
// seal first, once no backup needs the segment; they stay together while a
// running backup may need WAL stored since it started, even when only the
// seal is that young; next to a whole copy both are clutter.
func TestRunSealedSegments(t *testing.T) {
	f := newFixture(t)
	seal1, chunks1 := f.sealed(1, 1)
	f.now = f.now.Add(time.Hour)
	name2 := wal.SegmentFileName(1, 2, seg)
	chunk2 := mustKey(t)(catalog.StreamChunkKey(name2, 0, seg, seg, sum("b"), true))
	f.put(chunk2, "chunk")
	f.now = f.now.Add(time.Hour)
	res, _ := catalog.BackupReservationKey(catalog.BackupID(f.now))
	f.put(res, "{}") // a backup starts, and runs on
	f.now = f.now.Add(2 * time.Minute)
	seal2 := mustKey(t)(catalog.SealKey(name2, sum("a")))
	f.put(seal2, string(catalog.MarshalSeal(&catalog.Seal{Format: catalog.FormatVersion, Segment: name2, SegSize: seg,
		SHA256: sum("a"), Chunks: []catalog.SealChunk{{Key: chunk2, Start: 0, End: seg}}})))
	f.now = f.now.Add(time.Hour)
	b := f.backup(1, 3)
	whole3 := f.segment(1, 3)
	seal3, chunks3 := f.sealed(1, 3) // a whole copy supersedes them
	seal4, chunks4 := f.sealed(1, 4)
	o := Options{Backups: Policy{KeepLast: 1}, DoBackups: true, Now: f.now, Grace: 24 * time.Hour}
	rec := &deletes{Storage: f.m}
	got, err := Run(t.Context(), repo.New(rec, nil), o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{seal1: false, chunks1[0]: false, chunks1[1]: false, seal2: true, chunk2: true,
		whole3: true, seal3: false, chunks3[0]: false, chunks3[1]: false, seal4: true, chunks4[0]: true, chunks4[1]: true,
		catalog.BackupEntryKey(b.ID): true}
	for key, keep := range want {
		if f.has(key) != keep {
			t.Errorf("%s: stored %v, want %v", key, f.has(key), keep)
		}
	}
	if len(rec.keys) < 3 || rec.keys[0] != seal1 {
		t.Errorf("deleted %v: want the seal before its chunks", rec.keys)
	}
	if got.WAL.Delete != 3 || got.Streamed.Delete != 3 {
		t.Errorf("wal %+v, streamed %+v: want 3 and 3 deleted", got.WAL, got.Streamed)
	}
}

// deletes records the keys deleted, in order.
type deletes struct {
	storage.Storage
	keys []string
}

func (d *deletes) Delete(ctx context.Context, key string) error {
	d.keys = append(d.keys, key)
	return d.Storage.Delete(ctx, key)
}
