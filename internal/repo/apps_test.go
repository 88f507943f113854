package repo

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// Reserve, save, list and read app points; a damaged entry is named and
// skipped, and a reservation without an entry is not listed.
func TestApps(t *testing.T) {
	m := storagetest.NewMemory()
	r := New(m, nil)
	at := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	save := func(app string, t0 time.Time) string {
		t.Helper()
		id, _, err := r.ReserveAppID(t.Context(), app, t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.SaveApp(t.Context(), &catalog.App{ID: id, Format: catalog.AppFormat, App: app, Versions: map[string]string{"os": "x"}}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := save("mastodon", at)
	second := save("mastodon", at) // same second: the next free id
	save("zulip", at)
	if first == second {
		t.Fatalf("two reservations in one second got id %s", first)
	}
	// A reservation alone is not an app point.
	if _, _, err := r.ReserveAppID(t.Context(), "mastodon", at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	bad, _ := catalog.AppEntryKey("zulip", catalog.BackupID(at.Add(2*time.Hour)))
	if err := m.Put(t.Context(), bad, strings.NewReader(`{"id":`)); err != nil {
		t.Fatal(err)
	}
	all, damaged, err := r.ListApps(t.Context(), "")
	if err != nil || len(all) != 3 || len(damaged) != 1 || damaged[0].App != "zulip" {
		t.Fatalf("ListApps = %v, %+v, %v", all, damaged, err)
	}
	mast, _, err := r.ListApps(t.Context(), "mastodon")
	if err != nil || len(mast) != 2 || mast[0].ID > mast[1].ID {
		t.Fatalf("ListApps(mastodon) = %v, %v", mast, err)
	}
	if a, err := r.App(t.Context(), "mastodon", "latest"); err != nil || a.ID != mast[1].ID || a.Versions["os"] != "x" {
		t.Fatalf("latest = %+v, %v", a, err)
	}
	if _, err := r.App(t.Context(), "zulip", catalog.BackupID(at.Add(2*time.Hour))); !errors.Is(err, ErrDamaged) {
		t.Fatalf("damaged: %v", err)
	}
	if _, err := r.App(t.Context(), "nosuch", "latest"); err == nil || !strings.Contains(err.Error(), "no app points of nosuch") {
		t.Fatalf("no points: %v", err)
	}
}
