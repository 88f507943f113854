package catalog

import (
	"strings"
	"testing"
)

func TestDumpKeys(t *testing.T) {
	const id = "20261122T023000Z"
	for _, tc := range []struct {
		db, wantObject string
	}{
		{"app", "dumps/app/" + id + "/dump.zst.age"},
		{"my-app_2.v1", "dumps/my-app_2.v1/" + id + "/dump.zst.age"},
		{"a/b c", "dumps/a%2Fb%20c/" + id + "/dump.zst.age"},
		{".hidden", "dumps/%2Ehidden/" + id + "/dump.zst.age"},
		{"..", "dumps/%2E./" + id + "/dump.zst.age"},
		{"100%", "dumps/100%25/" + id + "/dump.zst.age"},
	} {
		got, err := DumpObjectKey(tc.db, id, true)
		if err != nil || got != tc.wantObject {
			t.Errorf("DumpObjectKey(%q) = %q, %v; want %q", tc.db, got, err, tc.wantObject)
		}
		entry, err := DumpEntryKey(tc.db, id)
		if err != nil || entry != strings.TrimSuffix(tc.wantObject, "dump.zst.age")+"dump.json" {
			t.Errorf("DumpEntryKey(%q) = %q, %v", tc.db, entry, err)
		}
		db, gotID, ok := ParseDumpEntryKey(entry)
		if !ok || db != tc.db || gotID != id {
			t.Errorf("ParseDumpEntryKey(%q) = %q, %q, %v", entry, db, gotID, ok)
		}
	}
	for _, bad := range []string{
		"dumps/app/" + id + "/dump.zst.age",
		"dumps/app/20261122/dump.json",
		"dumps/a%2fb/" + id + "/dump.json", // lower-case escape: not ours
		"dumps/%2/" + id + "/dump.json",
		"dumps/x/y/" + id + "/dump.json",
		"backups/" + id + "/backup.json",
	} {
		if db, id, ok := ParseDumpEntryKey(bad); ok {
			t.Errorf("ParseDumpEntryKey(%q) accepted: %q %q", bad, db, id)
		}
	}
	if _, err := DumpObjectKey("", id, true); err == nil {
		t.Error("empty database name accepted")
	}
	if _, err := DumpObjectKey("app", "latest", false); err == nil {
		t.Error("bad id accepted")
	}
}

func TestDumpEntryRoundTrip(t *testing.T) {
	key, _ := DumpObjectKey("app", "20261122T023000Z", false)
	d := &Dump{ID: "20261122T023000Z", Format: FormatVersion, Database: "app", Key: key,
		SHA256: strings.Repeat("ab", 32), StartTime: mustTime("2026-11-22T02:30:00Z")}
	got, err := UnmarshalDump(MarshalDump(d))
	if err != nil || got.Key != key || got.Database != "app" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	d.Encrypted = true // key no longer matches
	if _, err := UnmarshalDump(MarshalDump(d)); err == nil {
		t.Error("entry with a mismatched key accepted")
	}
}

// TestGlobalsEntry: the globals live at dumps/_globals/ with kind
// "globals", and an entry whose kind and database disagree is refused.
func TestGlobalsEntry(t *testing.T) {
	const id = "20261122T023000Z"
	key, err := DumpObjectKey(GlobalsDatabase, id, true)
	if err != nil || key != "dumps/_globals/"+id+"/dump.zst.age" {
		t.Fatalf("globals key %q, %v", key, err)
	}
	d := &Dump{ID: id, Format: FormatVersion, Database: GlobalsDatabase, Key: key, Encrypted: true,
		SHA256: strings.Repeat("ab", 32), Kind: KindGlobals}
	if _, err := UnmarshalDump(MarshalDump(d)); err != nil {
		t.Errorf("globals entry: %v", err)
	}
	for _, tc := range []struct{ db, kind string }{{GlobalsDatabase, ""}, {"app", KindGlobals}, {"app", "other"}} {
		bad := *d
		bad.Database, bad.Kind = tc.db, tc.kind
		bad.Key, _ = DumpObjectKey(tc.db, id, true)
		if _, err := UnmarshalDump(MarshalDump(&bad)); err == nil {
			t.Errorf("database %q with kind %q accepted", tc.db, tc.kind)
		}
	}
}
