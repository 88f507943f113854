package repo

import (
	"errors"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
)

func TestPins(t *testing.T) {
	m := newRepo(t)
	m.backup("20261201T010000Z", 1, 2)
	dkey, _ := catalog.DumpEntryKey("app", "20261201T020000Z")
	m.put(dkey, "{}")
	r := New(m.m, nil)
	ctx := t.Context()

	ref, err := r.ResolveItem(ctx, "20261201T010000Z")
	if err != nil || ref != (catalog.PinRef{Kind: catalog.PinBackup, ID: "20261201T010000Z"}) {
		t.Fatalf("ResolveItem(backup) = %v, %v", ref, err)
	}
	dref, err := r.ResolveItem(ctx, "app/20261201T020000Z")
	if err != nil || dref != (catalog.PinRef{Kind: catalog.PinDump, Group: "app", ID: "20261201T020000Z"}) {
		t.Fatalf("ResolveItem(dump) = %v, %v", dref, err)
	}
	for _, s := range []string{"20261101T010000Z", "app/20261101T010000Z", "files:app/20261201T020000Z"} {
		if _, err := r.ResolveItem(ctx, s); !errors.Is(err, ErrNoSuchItem) {
			t.Errorf("ResolveItem(%q) = %v, want ErrNoSuchItem", s, err)
		}
	}
	if _, err := r.ResolveItem(ctx, "latest"); !errors.Is(err, ErrBadItemName) {
		t.Errorf("ResolveItem(latest) = %v, want a usage-like error", err)
	}

	at := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for _, pinned := range []bool{true, false, true} { // all in one second: -1, -2
		if err := r.SavePin(ctx, &catalog.Pin{PinRef: ref, Pinned: pinned, Note: "n", At: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.SavePin(ctx, &catalog.Pin{PinRef: dref, Pinned: false, At: at}); err != nil {
		t.Fatal(err)
	}
	ps, err := r.ListPins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !ps.Pinned(ref) || ps.Pinned(dref) {
		t.Errorf("Pinned: backup %v, dump %v; want true, false", ps.Pinned(ref), ps.Pinned(dref))
	}
	// The backup's two older records, and the dump's only (unpinned) one.
	if len(ps.Superseded) != 3 {
		t.Errorf("superseded %v, want 3 records", ps.Superseded)
	}
}
