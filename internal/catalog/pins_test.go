package catalog

import "testing"

func TestPinKeyRoundTrip(t *testing.T) {
	for _, ref := range []PinRef{
		{Kind: PinBackup, ID: "20261201T103000Z"},
		{Kind: PinDump, Group: "my db/x", ID: "20261201T103000Z-2"},
		{Kind: PinSnapshot, Group: "uploads", ID: "20261201T103000Z"},
	} {
		key, err := PinKey(ref, "20261202T000000Z-1")
		if err != nil {
			t.Fatalf("PinKey(%v): %v", ref, err)
		}
		got, at, ok := ParsePinKey(key)
		if !ok || got != ref || at != "20261202T000000Z-1" {
			t.Errorf("ParsePinKey(%q) = %v %q %v, want %v", key, got, at, ok, ref)
		}
	}
	for _, bad := range []string{"pins/backup/x/20261202T000000Z.json", "pins/backup/20261201T103000Z/20261202T000000Z",
		"pins/other/a/20261201T103000Z/20261202T000000Z.json", "pins/snapshot/Bad/20261201T103000Z/20261202T000000Z.json"} {
		if _, _, ok := ParsePinKey(bad); ok {
			t.Errorf("ParsePinKey(%q) accepted", bad)
		}
	}
	if _, err := PinKey(PinRef{Kind: PinBackup, ID: "nope"}, "20261202T000000Z"); err == nil {
		t.Error("PinKey accepted a bad id")
	}
	if !IDLess("20261202T000000Z", "20261202T000000Z-1") || IDLess("20261202T000001Z", "20261202T000000Z-9") {
		t.Error("PinRecordLess: wrong order")
	}
}
