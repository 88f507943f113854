package repo

import (
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
)

// NewestDumps reads from the newest entry back to the first readable
// one, naming the damaged ones it passed, and counts every entry.
func TestNewestDumps(t *testing.T) {
	r := newRepo(t)
	dump := func(db, id string) {
		key, _ := catalog.DumpEntryKey(db, id)
		obj, _ := catalog.DumpObjectKey(db, id, true)
		r.put(key, string(catalog.MarshalDump(&catalog.Dump{ID: id, Format: catalog.FormatVersion, Database: db, Key: obj,
			SHA256: strings.Repeat("c", 64), Encrypted: true, Bytes: 7})))
	}
	dump("app", "20261120T020000Z")
	dump("app", "20261121T020000Z")
	bad, _ := catalog.DumpEntryKey("app", "20261122T020000Z")
	r.put(bad, "{")
	dump("billing", "20261122T020000Z")
	got, err := New(r.m, nil).NewestDumps(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "app" || got[0].Entries != 3 || got[0].Dump == nil || got[0].Dump.ID != "20261121T020000Z" ||
		len(got[0].Damaged) != 1 || got[0].Damaged[0] != "20261122T020000Z" || got[1].Name != "billing" || got[1].Dump == nil {
		t.Fatalf("NewestDumps = %+v", got)
	}
}
