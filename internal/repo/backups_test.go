package repo

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

const seg = 16 << 20

// memRepo is an in-memory repository with helpers to store backups and WAL.
type memRepo struct {
	t *testing.T
	m *storagetest.Memory
}

func newRepo(t *testing.T) *memRepo { return &memRepo{t: t, m: storagetest.NewMemory()} }

func (r *memRepo) put(key, body string) {
	r.t.Helper()
	if err := r.m.Put(r.t.Context(), key, strings.NewReader(body)); err != nil {
		r.t.Fatal(err)
	}
}

// backup stores a complete backup of segments start..end on timeline 1
// with parts base.tar and backup_manifest, each stored as "part".
func (r *memRepo) backup(id string, start, end uint64) *catalog.Backup {
	r.t.Helper()
	b := &catalog.Backup{ID: id, Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg, Encrypted: true,
		StartWAL: wal.SegmentFileName(1, start, seg), EndWAL: wal.SegmentFileName(1, end, seg)}
	for _, name := range []string{"base.tar", "backup_manifest"} {
		key, _ := catalog.BackupPartKey(id, name, true)
		b.Parts = append(b.Parts, catalog.Part{Name: name, Key: key, SHA256: strings.Repeat("0", 64), Stored: 4})
		r.put(key, "part")
	}
	r.put(catalog.BackupEntryKey(id), string(catalog.MarshalBackup(b)))
	return b
}

func (r *memRepo) segment(tli wal.Timeline, segNo uint64, sum byte) {
	r.t.Helper()
	key, err := catalog.WALKey(wal.SegmentFileName(tli, segNo, seg), strings.Repeat(string(sum), 64), true)
	if err != nil {
		r.t.Fatal(err)
	}
	r.put(key, "wal")
}

func (r *memRepo) index() *wal.Index {
	r.t.Helper()
	ix, err := wal.LoadIndex(r.t.Context(), r.m)
	if err != nil {
		r.t.Fatal(err)
	}
	return ix
}

// A truncated entry is named with its reason and skipped; the other
// backups are listed and readable, and Get of the damaged one names it.
func TestLoadDamagedEntry(t *testing.T) {
	r := newRepo(t)
	r.backup("20261122T010000Z", 1, 1)
	bad := r.backup("20261122T020000Z", 2, 2)
	r.backup("20261122T030000Z", 3, 3)
	entry := string(catalog.MarshalBackup(bad))
	r.put(catalog.BackupEntryKey(bad.ID), entry[:len(entry)/2])

	l, err := New(r.m, nil).ListBackups(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(l.Backups) != 2 || l.Backups[0].ID != "20261122T010000Z" || l.Backups[1].ID != "20261122T030000Z" {
		t.Fatalf("Backups = %v", l.Backups)
	}
	if len(l.Damaged) != 1 || l.Damaged[0].ID != bad.ID || !strings.Contains(l.Damaged[0].Reason, "not valid JSON") {
		t.Fatalf("Damaged = %+v", l.Damaged)
	}
	if len(l.Incomplete) != 0 {
		t.Fatalf("a damaged entry is listed as incomplete (and would be cleaned): %v", l.Incomplete)
	}
	if l, err := New(r.m, nil).ListBackups(t.Context()); err != nil || len(l.Backups) != 2 {
		t.Fatalf("ListBackups = %v, %v", l, err)
	}
	if _, err := New(r.m, nil).Backup(t.Context(), "20261122T030000Z"); err != nil {
		t.Fatalf("Get of a good backup beside a damaged one: %v", err)
	}
	_, err = New(r.m, nil).Backup(t.Context(), bad.ID)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), bad.ID) || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("Get of the damaged backup: %v", err)
	}
	if err := l.Problem(bad.ID); err == nil || !strings.Contains(err.Error(), bad.ID) {
		t.Fatalf("Problem = %v", err)
	}
	// An entry that names another id, or a newer format, is damaged too.
	other := *bad
	other.ID = "20261122T040000Z"
	other.Parts = nil
	for _, p := range bad.Parts {
		p.Key, _ = catalog.BackupPartKey(other.ID, p.Name, true)
		other.Parts = append(other.Parts, p)
	}
	r.put(catalog.BackupEntryKey(bad.ID), string(catalog.MarshalBackup(&other)))
	newer := r.backup("20261122T050000Z", 5, 5)
	newer.Format = catalog.FormatVersion + 1
	r.put(catalog.BackupEntryKey(newer.ID), string(catalog.MarshalBackup(newer)))
	l, err = New(r.m, nil).ListBackups(t.Context())
	if err != nil || len(l.Damaged) != 2 || !strings.Contains(l.Damaged[0].Reason, "names id 20261122T040000Z") ||
		!strings.Contains(l.Damaged[1].Reason, "format 2 not supported") {
		t.Fatalf("Load = %+v, %v", l, err)
	}
}

// A backup whose part is gone, or shorter than recorded, is listed with
// the part named and is not usable; Intact leaves it out.
func TestLoadMissingPart(t *testing.T) {
	r := newRepo(t)
	for i := uint64(1); i <= 4; i++ {
		r.segment(1, i, 'a')
	}
	good := r.backup("20261122T010000Z", 1, 1)
	gone := r.backup("20261122T020000Z", 2, 2)
	short := r.backup("20261122T030000Z", 3, 3)
	if err := r.m.Delete(t.Context(), gone.Parts[0].Key); err != nil {
		t.Fatal(err)
	}
	r.put(short.Parts[1].Key, "pa")

	l, err := New(r.m, nil).ListBackups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Parts[gone.ID]; got != "part missing: base.tar" {
		t.Fatalf("deleted base.tar: %q", got)
	}
	if got := l.Parts[short.ID]; got != "part size differs: backup_manifest (2 bytes stored, entry says 4)" {
		t.Fatalf("truncated manifest: %q", got)
	}
	if got := l.Parts[good.ID]; got != "" {
		t.Fatalf("intact backup: %q", got)
	}
	if in := l.Intact(); len(in) != 1 || in[0].ID != good.ID {
		t.Fatalf("Intact = %v", in)
	}
	us := l.Check(r.index())
	if !us[0].Usable || us[1].Usable || us[2].Usable || us[1].Parts == "" {
		t.Fatalf("Check = %+v", us)
	}
	if err := l.Problem(gone.ID); err == nil || !strings.Contains(err.Error(), "part missing: base.tar") {
		t.Fatalf("Problem = %v", err)
	}
}

// Two stored copies of one segment with different content: a backup whose
// chain passes it is not usable, one whose chain stops before it is.
func TestCheckWALConflict(t *testing.T) {
	r := newRepo(t)
	for i := uint64(1); i <= 6; i++ {
		r.segment(1, i, 'a')
	}
	r.segment(1, 5, 'b') // a second, different copy of segment 5
	r.segment(1, 2, 'a') // the same content twice is no conflict
	before := &catalog.Backup{ID: "20261122T010000Z", WALSegmentSize: seg, Timeline: 1,
		StartWAL: wal.SegmentFileName(1, 1, seg), EndWAL: wal.SegmentFileName(1, 2, seg)}
	after := &catalog.Backup{ID: "20261122T020000Z", WALSegmentSize: seg, Timeline: 1,
		StartWAL: wal.SegmentFileName(1, 6, seg), EndWAL: wal.SegmentFileName(1, 6, seg)}
	ix := r.index()
	conflict := wal.SegmentFileName(1, 5, seg)
	if got := ix.Conflicts(); len(got) != 1 || got[0] != conflict {
		t.Fatalf("Conflicts = %v", got)
	}
	us := Check([]*catalog.Backup{before, after}, ix)
	if us[0].Usable || us[0].Conflict != conflict {
		t.Fatalf("backup whose chain passes the conflict: %+v", us[0])
	}
	if !us[1].Usable || us[1].Conflict != "" {
		t.Fatalf("backup after the conflict: %+v", us[1])
	}
	if ws := Windows(us); len(ws) != 1 || !ws[0].From.Equal(after.EndTime) {
		t.Fatalf("Windows = %v", ws)
	}
}

// JSON uses snake_case and [] for empty lists.
func TestWindowJSON(t *testing.T) {
	got, _ := json.Marshal(struct {
		W []Window `json:"w"`
		E []Window `json:"e"`
	}{[]Window{{From: time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)}}, Windows(nil)})
	if want := `{"w":[{"from":"2026-11-22T01:00:00Z","to":"2026-11-22T02:00:00Z"}],"e":[]}`; string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// A backup's own WAL is on its own timeline: another timeline's segments
// of the same numbers (a rehearsal restored from production and running
// ahead of it) never make it consistent, or backup would report success
// for WAL that is not stored.
func TestCheckOwnTimelineOnly(t *testing.T) {
	r := newRepo(t)
	r.segment(1, 1, 'a')
	r.segment(1, 2, 'a')
	for i := uint64(2); i <= 6; i++ {
		r.segment(2, i, 'c') // the rehearsal's timeline, branched in segment 2
	}
	b := &catalog.Backup{ID: "20261122T010000Z", WALSegmentSize: seg, Timeline: 1,
		StartWAL: wal.SegmentFileName(1, 1, seg), EndWAL: wal.SegmentFileName(1, 4, seg)}
	us := Check([]*catalog.Backup{b}, r.index())
	if us[0].Usable {
		t.Fatalf("backup on timeline 1 counted consistent with timeline 2's segments: %+v", us[0].Chain)
	}
	if want := wal.SegmentFileName(1, 3, seg); us[0].Chain.Missing != want {
		t.Fatalf("missing %q, want %q", us[0].Chain.Missing, want)
	}
}
