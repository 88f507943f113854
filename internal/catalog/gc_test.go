package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCondemnedKeyRoundTrip(t *testing.T) {
	for _, id := range []string{"20261201T103000Z", "20261201T103000Z-3"} {
		key, err := CondemnedKey(id)
		if err != nil || key != "files/condemned/"+id+".json" {
			t.Fatalf("CondemnedKey(%s) = %q, %v", id, key, err)
		}
		if got, ok := ParseCondemnedKey(key); !ok || got != id {
			t.Fatalf("ParseCondemnedKey(%s) = %q, %v", key, got, ok)
		}
	}
	for _, key := range []string{"files/condemned/x.json", "files/condemned/20261201T103000Z", "files/index/20261201T103000Z.json"} {
		if _, ok := ParseCondemnedKey(key); ok {
			t.Errorf("ParseCondemnedKey(%s) accepted", key)
		}
	}
	if _, err := CondemnedKey("../x"); err == nil {
		t.Error("CondemnedKey accepted a bad id")
	}
}

func TestCondemnedRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	c := &Condemned{Format: FormatVersion, ID: "20261201T103000Z", Time: t0, Host: "db1", Supersedes: []string{"20261130T103000Z"},
		Packs: []CondemnedPack{{Pack: sum, Indexes: []string{sum}, Size: 42, Since: t0.Add(-time.Hour), Repack: true}}}
	got, err := UnmarshalCondemned(MarshalCondemned(c))
	if err != nil || got.ID != c.ID || len(got.Packs) != 1 || !got.Packs[0].Since.Equal(c.Packs[0].Since) || !got.Packs[0].Repack || got.Packs[0].Size != 42 {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, data := range map[string]string{
		"not json":   `{"format":`,
		"format":     `{"format":2,"id":"20261201T103000Z"}`,
		"id":         `{"format":1,"id":"x"}`,
		"pack":       `{"format":1,"id":"20261201T103000Z","packs":[{"pack":"abc"}]}`,
		"index":      `{"format":1,"id":"20261201T103000Z","packs":[{"pack":"` + sum + `","indexes":["zz"]}]}`,
		"supersedes": `{"format":1,"id":"20261201T103000Z","packs":[],"supersedes":["nope"]}`,
	} {
		_, err := UnmarshalCondemned([]byte(data))
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line of error", name, err)
		}
		if name == "format" && !errors.Is(err, ErrFormat) {
			t.Errorf("format: %v does not wrap ErrFormat", err)
		}
	}
}
