package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

const seg = 16 << 20

// memEnv is an env on m, made a repository (pitr.json) first.
func memEnv(m *storagetest.Memory) (*env, *bytes.Buffer) {
	var out bytes.Buffer
	if err := m.Put(context.Background(), catalog.MarkerKey, bytes.NewReader(catalog.MarshalMarker(time.Now(), "test"))); err != nil {
		panic(err)
	}
	return &env{store: m, stdout: &out, stderr: &out}, &out
}

func put(t *testing.T, m *storagetest.Memory, key, body string) {
	t.Helper()
	if err := m.Put(t.Context(), key, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

// An empty repository gives [] for every list, never null, and snake_case.
func TestListJSONEmpty(t *testing.T) {
	e, out := memEnv(storagetest.NewMemory())
	if err := runList(t.Context(), e, true); err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"backups", "recoverable_windows", "timelines", "incomplete_backups", "damaged_backups", "wal_conflicts", "wal_gaps"} {
		if string(got[k]) != "[]" {
			t.Errorf("%s = %s, want []", k, got[k])
		}
	}
}

// A backup, its WAL with one segment stored twice, and a damaged entry:
// list names both problems, in text and JSON.
func TestListDamagedAndConflict(t *testing.T) {
	m := storagetest.NewMemory()
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	m.Now = func() time.Time { return now }
	for i := uint64(1); i <= 4; i++ {
		key, _ := catalog.WALKey(wal.SegmentFileName(1, i, seg), strings.Repeat("a", 64), true)
		put(t, m, key, "x")
	}
	b := &catalog.Backup{ID: "20261122T010000Z", Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg, Encrypted: true,
		StartTime: now, EndTime: now, StartWAL: wal.SegmentFileName(1, 1, seg), EndWAL: wal.SegmentFileName(1, 2, seg)}
	key, _ := catalog.BackupPartKey(b.ID, "base.tar", true)
	b.Parts = []catalog.Part{{Name: "base.tar", Key: key, SHA256: strings.Repeat("0", 64), Stored: 1}}
	put(t, m, key, "x")
	put(t, m, catalog.BackupEntryKey(b.ID), string(catalog.MarshalBackup(b)))
	put(t, m, catalog.BackupEntryKey("20261122T020000Z"), `{"id": "20261122T02`)

	e, out := memEnv(m)
	if err := runList(t.Context(), e, false); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"damaged: 20261122T020000Z (not valid JSON", "ok\n", "restorable to any moment from"} {
		if !strings.Contains(text, want) {
			t.Errorf("list lacks %q:\n%s", want, text)
		}
	}

	conflict := wal.SegmentFileName(1, 3, seg)
	key, _ = catalog.WALKey(conflict, strings.Repeat("b", 64), true)
	put(t, m, key, "y")
	e, out = memEnv(m)
	if err := runList(t.Context(), e, false); err != nil {
		t.Fatal(err)
	}
	text = out.String()
	for _, want := range []string{"WAL conflict: " + conflict + "\n", "WAL conflict: " + conflict + " is stored twice", "nothing is restorable yet"} {
		if !strings.Contains(text, want) {
			t.Errorf("list lacks %q:\n%s", want, text)
		}
	}
	e, out = memEnv(m)
	if err := runList(t.Context(), e, true); err != nil {
		t.Fatal(err)
	}
	var lo listOutput
	if err := json.Unmarshal(out.Bytes(), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Backups) != 1 || lo.Backups[0].Usable || lo.Backups[0].WALConflict != conflict || lo.Backups[0].Status != "WAL conflict: "+conflict {
		t.Fatalf("backups: %+v", lo.Backups)
	}
	if len(lo.Damaged) != 1 || lo.Damaged[0].ID != "20261122T020000Z" || len(lo.WALConflicts) != 1 {
		t.Fatalf("damaged %+v, conflicts %v", lo.Damaged, lo.WALConflicts)
	}
	if bytes.Contains(out.Bytes(), []byte("null")) || bytes.Contains(out.Bytes(), []byte(`"From"`)) {
		t.Fatalf("list --json has null or From:\n%s", out)
	}
}

// With the conflict gone, the window uses from/to.
func TestListJSONWindowKeys(t *testing.T) {
	m := storagetest.NewMemory()
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	m.Now = func() time.Time { return now }
	key, _ := catalog.WALKey(wal.SegmentFileName(1, 1, seg), strings.Repeat("a", 64), true)
	put(t, m, key, "x")
	b := &catalog.Backup{ID: "20261122T010000Z", Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg, Encrypted: true,
		StartTime: now, EndTime: now, StartWAL: wal.SegmentFileName(1, 1, seg), EndWAL: wal.SegmentFileName(1, 1, seg)}
	key, _ = catalog.BackupPartKey(b.ID, "base.tar", true)
	b.Parts = []catalog.Part{{Name: "base.tar", Key: key, SHA256: strings.Repeat("0", 64), Stored: 1}}
	put(t, m, key, "x")
	put(t, m, catalog.BackupEntryKey(b.ID), string(catalog.MarshalBackup(b)))
	e, out := memEnv(m)
	if err := runList(t.Context(), e, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte(`"recoverable_windows": [
    {
      "from": "2026-11-22T01:00:00Z",
      "to": "2026-11-22T01:00:00Z"`)) {
		t.Fatalf("window keys:\n%s", out)
	}
}

// A missing segment with later WAL after it is named as a gap.
func TestListWALGap(t *testing.T) {
	m := storagetest.NewMemory()
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	for _, i := range []uint64{1, 3} {
		key, _ := catalog.WALKey(wal.SegmentFileName(1, i, seg), strings.Repeat("a", 64), true)
		put(t, m, key, "x")
	}
	b := &catalog.Backup{ID: "20261122T010000Z", Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg, Encrypted: true,
		StartTime: now, EndTime: now, StartWAL: wal.SegmentFileName(1, 1, seg), EndWAL: wal.SegmentFileName(1, 1, seg)}
	key, _ := catalog.BackupPartKey(b.ID, "base.tar", true)
	b.Parts = []catalog.Part{{Name: "base.tar", Key: key, SHA256: strings.Repeat("0", 64), Stored: 1}}
	put(t, m, key, "x")
	put(t, m, catalog.BackupEntryKey(b.ID), string(catalog.MarshalBackup(b)))
	e, out := memEnv(m)
	if err := runList(t.Context(), e, false); err != nil {
		t.Fatal(err)
	}
	if want := "WAL gap: " + wal.SegmentFileName(1, 2, seg) + " is missing"; !strings.Contains(out.String(), want) {
		t.Fatalf("list lacks %q:\n%s", want, out)
	}
}
