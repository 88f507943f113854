package status

import (
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/retention"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

const seg = 16 << 20

var t0 = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)

// fixture is an in-memory repository whose objects are stored at clock.
type fixture struct {
	t     *testing.T
	m     *storagetest.Memory
	clock time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, m: storagetest.NewMemory(), clock: t0}
	f.m.Now = func() time.Time { return f.clock }
	f.put(catalog.MarkerKey, string(catalog.MarshalMarker(t0, "test")))
	return f
}

func (f *fixture) put(key, body string) {
	f.t.Helper()
	if err := f.m.Put(f.t.Context(), key, strings.NewReader(body)); err != nil {
		f.t.Fatal(err)
	}
}

// backup stores a complete backup of segments start..end on timeline 1,
// ended at the clock.
func (f *fixture) backup(id string, start, end uint64) {
	f.t.Helper()
	b := &catalog.Backup{ID: id, Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg, Encrypted: true,
		StartWAL: wal.SegmentFileName(1, start, seg), EndWAL: wal.SegmentFileName(1, end, seg),
		StartTime: f.clock.Add(-time.Minute), EndTime: f.clock, Bytes: 1000, Stored: 8}
	for _, name := range []string{"base.tar", "backup_manifest"} {
		key, _ := catalog.BackupPartKey(id, name, true)
		b.Parts = append(b.Parts, catalog.Part{Name: name, Key: key, SHA256: strings.Repeat("0", 64), Stored: 4})
		f.put(key, "part")
	}
	f.put(catalog.BackupEntryKey(id), string(catalog.MarshalBackup(b)))
}

func (f *fixture) segment(segNo uint64) {
	f.t.Helper()
	key, err := catalog.WALKey(wal.SegmentFileName(1, segNo, seg), strings.Repeat("a", 64), true)
	if err != nil {
		f.t.Fatal(err)
	}
	f.put(key, "wal")
}

func (f *fixture) gather(opts Options) *Status {
	f.t.Helper()
	r, err := repo.Open(f.t.Context(), f.m, nil, "mem://")
	if err != nil {
		f.t.Fatal(err)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return f.clock }
	}
	s, err := Gather(f.t.Context(), r, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func TestGatherEmpty(t *testing.T) {
	f := newFixture(t)
	s := f.gather(Options{URL: "s3://b/db1", Name: "db1"})
	if s.Name != "db1" || len(s.Backups) != 0 || s.NewestBackup() != nil || s.WAL.AgeSeconds != -1 || s.Verify != nil || s.Drill != nil {
		t.Fatalf("empty repository: %+v", s)
	}
}

func TestGatherBackupsWALReportsEntries(t *testing.T) {
	f := newFixture(t)
	f.segment(1)
	f.segment(2)
	f.backup("20261122T015900Z", 1, 2)
	f.clock = f.clock.Add(time.Hour)
	f.segment(3)
	// segment 4 missing, 5 stored: a gap
	f.clock = f.clock.Add(time.Minute)
	f.segment(5)
	dumpKey, _ := catalog.DumpEntryKey("app", "20261122T030000Z")
	objKey, _ := catalog.DumpObjectKey("app", "20261122T030000Z", false)
	f.put(dumpKey, string(catalog.MarshalDump(&catalog.Dump{ID: "20261122T030000Z", Format: catalog.FormatVersion, Database: "app",
		Key: objKey, SHA256: strings.Repeat("c", 64), EndTime: f.clock, Bytes: 42})))
	rep := &catalog.Report{Kind: catalog.ReportDrill, Started: f.clock, Finished: f.clock.Add(time.Minute), OK: true, RTOSeconds: 12.5, Backup: "20261122T015900Z"}
	r := repo.New(f.m, nil)
	if err := r.SaveReport(t.Context(), rep); err != nil {
		t.Fatal(err)
	}
	f.clock = f.clock.Add(10 * time.Minute)

	s := f.gather(Options{URL: "file:///r"})
	if s.Name != "file:///r" {
		t.Errorf("name %q, want the URL", s.Name)
	}
	if len(s.Backups) != 1 || !s.Backups[0].Usable || s.Backups[0].Status != "ok" || s.NewestBackup() == nil {
		t.Fatalf("backups %+v", s.Backups)
	}
	if want := wal.SegmentFileName(1, 5, seg); s.WAL.Newest != want || s.WAL.AgeSeconds != 600 {
		t.Errorf("newest WAL %s age %v, want %s 600", s.WAL.Newest, s.WAL.AgeSeconds, want)
	}
	if want := wal.SegmentFileName(1, 4, seg); len(s.WAL.Gaps) != 1 || s.WAL.Gaps[0] != want {
		t.Errorf("gaps %v, want [%s]", s.WAL.Gaps, want)
	}
	if len(s.Windows) != 1 || !s.Windows[0].From.Equal(t0) {
		t.Errorf("windows %+v", s.Windows)
	}
	if len(s.Dumps) != 1 || s.Dumps[0].Name != "app" || s.Dumps[0].Count != 1 || s.Dumps[0].Bytes != 42 {
		t.Errorf("dumps %+v", s.Dumps)
	}
	if s.Drill == nil || !s.Drill.OK || s.Drill.RTOSeconds != 12.5 || s.Drill.AgeSeconds != 540 {
		t.Errorf("drill %+v", s.Drill)
	}
	if s.Verify != nil {
		t.Errorf("verify %+v, want none", s.Verify)
	}
}

func TestGatherOffsiteLag(t *testing.T) {
	f := newFixture(t)
	f.segment(1)
	f.segment(2)
	f.backup("20261122T015900Z", 1, 2)
	off := newFixture(t)
	// The off-site copy has segment 1 only; segment 2 went into the
	// primary at t0 and the backup ended at t0.
	off.segment(1)
	f.clock = f.clock.Add(30 * time.Minute)
	o, err := repo.Open(t.Context(), off.m, nil, "mem://off")
	if err != nil {
		t.Fatal(err)
	}
	s := f.gather(Options{Offsite: o, OffsiteURL: "s3://off/db1"})
	if s.Offsite == nil || s.Offsite.Error != "" || s.Offsite.LagSeconds != 1800 ||
		s.Offsite.MissingWAL != wal.SegmentFileName(1, 2, seg) || len(s.Offsite.MissingBackups) != 1 {
		t.Fatalf("offsite %+v", s.Offsite)
	}
}

// Each backup shows the rules of the backups policy that keep it, pins
// included; without a policy given, none.
func TestGatherKeptBy(t *testing.T) {
	f := newFixture(t)
	f.segment(1)
	ids := []string{"20261120T020000Z", "20261121T020000Z", "20261122T020000Z"}
	for i, id := range ids {
		f.clock = t0.Add(time.Duration(i-2) * 24 * time.Hour)
		f.backup(id, 1, 1)
	}
	r := repo.New(f.m, nil)
	if err := r.SavePin(t.Context(), &catalog.Pin{PinRef: catalog.PinRef{Kind: catalog.PinBackup, ID: ids[0]}, Pinned: true, At: t0}); err != nil {
		t.Fatal(err)
	}
	f.clock = t0.Add(time.Hour)
	s := f.gather(Options{Retention: &retention.Policy{KeepLast: 1}})
	got := map[string]string{}
	for _, b := range s.Backups {
		got[b.ID] = strings.Join(b.KeptBy, ",")
	}
	want := map[string]string{ids[0]: "pinned", ids[1]: "", ids[2]: "last,newest"}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s kept by %q, want %q", id, got[id], w)
		}
	}
	for _, b := range f.gather(Options{}).Backups {
		if len(b.KeptBy) != 0 {
			t.Errorf("no policy given: %s kept by %v", b.ID, b.KeptBy)
		}
	}
}
