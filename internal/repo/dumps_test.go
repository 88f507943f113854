package repo

import (
	"errors"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// A truncated dump.json is named and skipped; the other dumps, and
// "latest", still work, and Get of the damaged one names it.
func TestLoadDamagedDump(t *testing.T) {
	m := storagetest.NewMemory()
	store := func(db, id string) string {
		t.Helper()
		key, _ := catalog.DumpObjectKey(db, id, true)
		d := &catalog.Dump{ID: id, Format: catalog.FormatVersion, Database: db, Key: key, Encrypted: true, SHA256: strings.Repeat("0", 64)}
		entry, _ := catalog.DumpEntryKey(db, id)
		if err := m.Put(t.Context(), entry, strings.NewReader(string(catalog.MarshalDump(d)))); err != nil {
			t.Fatal(err)
		}
		return entry
	}
	store("app", "20261122T010000Z")
	bad := store("app", "20261122T020000Z")
	store("shop", "20261122T010000Z")
	if err := m.Put(t.Context(), bad, strings.NewReader(`{"id":`)); err != nil {
		t.Fatal(err)
	}
	dumps, damaged, err := New(m, nil).ListDumps(t.Context(), "")
	if err != nil || len(dumps) != 2 || len(damaged) != 1 || damaged[0].ID != "20261122T020000Z" || damaged[0].Database != "app" {
		t.Fatalf("Load = %v, %+v, %v", dumps, damaged, err)
	}
	if d, err := New(m, nil).Dump(t.Context(), "app", "latest"); err != nil || d.ID != "20261122T010000Z" {
		t.Fatalf("latest of app beside a damaged newer dump: %v, %v", d, err)
	}
	_, err = New(m, nil).Dump(t.Context(), "app", "20261122T020000Z")
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "dump 20261122T020000Z of app") || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("Get of the damaged dump: %v", err)
	}
}
