package restore

import (
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// storeBackup puts an entry and its parts (base.tar, backup_manifest).
func storeBackup(t *testing.T, m *storagetest.Memory, b *catalog.Backup) {
	t.Helper()
	b.Format, b.Encrypted = catalog.FormatVersion, true
	for _, name := range []string{"base.tar", "backup_manifest"} {
		key, _ := catalog.BackupPartKey(b.ID, name, true)
		b.Parts = append(b.Parts, catalog.Part{Name: name, Key: key, SHA256: strings.Repeat("0", 64), Stored: 1})
		mustPut(t, m, key, "x")
	}
	mustPut(t, m, catalog.BackupEntryKey(b.ID), string(catalog.MarshalBackup(b)))
}

func mustPut(t *testing.T, m *storagetest.Memory, key, body string) {
	t.Helper()
	if err := m.Put(t.Context(), key, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

// Choose skips a damaged entry and a backup with a part missing, and
// naming either fails with its id and the reason.
func TestChooseDamagedAndMissing(t *testing.T) {
	m := storagetest.NewMemory()
	for i := 1; i <= 8; i++ {
		key, _ := catalog.WALKey(wal.SegmentFileName(1, uint64(i), seg), strings.Repeat("ab", 32), true)
		mustPut(t, m, key, "x")
	}
	first, damaged, partless := bk("20261122T010000Z", 1, 2, at(2, 0)), bk("20261122T040000Z", 4, 5, at(5, 0)), bk("20261122T060000Z", 6, 6, at(6, 10))
	for _, b := range []*catalog.Backup{first, damaged, partless} {
		storeBackup(t, m, b)
	}
	entry := string(catalog.MarshalBackup(damaged))
	mustPut(t, m, catalog.BackupEntryKey(damaged.ID), entry[:len(entry)-20])
	if err := m.Delete(t.Context(), partless.Parts[0].Key); err != nil {
		t.Fatal(err)
	}

	p, err := Choose(t.Context(), repo.New(m, &envelope.Codec{}), Target{Kind: Latest}, "", TimelineChoice{})
	if err != nil || p.Backup.ID != first.ID {
		t.Fatalf("latest: %v, %v; want %s (the others are damaged or miss a part)", p, err, first.ID)
	}
	if p, err := Choose(t.Context(), repo.New(m, &envelope.Codec{}), Target{Kind: Latest}, first.ID, TimelineChoice{}); err != nil || p.Backup.ID != first.ID {
		t.Fatalf("--backup %s beside a damaged entry: %v, %v", first.ID, p, err)
	}
	_, err = Choose(t.Context(), repo.New(m, &envelope.Codec{}), Target{Kind: Latest}, damaged.ID, TimelineChoice{})
	if err == nil || !strings.Contains(err.Error(), damaged.ID) || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("--backup of the damaged entry: %v", err)
	}
	_, err = Choose(t.Context(), repo.New(m, &envelope.Codec{}), Target{Kind: Latest}, partless.ID, TimelineChoice{})
	if err == nil || !strings.Contains(err.Error(), partless.ID) || !strings.Contains(err.Error(), "part missing: base.tar") {
		t.Fatalf("--backup of a backup without base.tar: %v", err)
	}
	// A second copy of segment 3 with other content: the first backup's
	// chain passes it.
	key, _ := catalog.WALKey(wal.SegmentFileName(1, 3, seg), strings.Repeat("cd", 32), true)
	mustPut(t, m, key, "y")
	_, err = Choose(t.Context(), repo.New(m, &envelope.Codec{}), Target{Kind: Latest}, "", TimelineChoice{})
	if err == nil || !strings.Contains(err.Error(), "WAL segment "+wal.SegmentFileName(1, 3, seg)+" is stored twice") {
		t.Fatalf("latest through a WAL conflict: %v", err)
	}
	// With the first backup's base.tar gone too, nothing is restorable,
	// and the error says why rather than "run pitr backup".
	if err := m.Delete(t.Context(), first.Parts[0].Key); err != nil {
		t.Fatal(err)
	}
	_, err = Choose(t.Context(), repo.New(m, &envelope.Codec{}), Target{Kind: Latest}, "", TimelineChoice{})
	if err == nil || !strings.Contains(err.Error(), "no restorable backup: 1 with a damaged entry, 2 with a part missing") {
		t.Fatalf("nothing intact: %v", err)
	}
}
