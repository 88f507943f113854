package wal_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

func TestIndexNewest(t *testing.T) {
	st := storagetest.NewMemory()
	ix, err := wal.LoadIndex(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	if name, at := ix.Newest(); name != "" || !at.IsZero() {
		t.Fatalf("empty index: Newest = %q %v", name, at)
	}
	sum := strings.Repeat("a", 64)
	for _, k := range []string{
		"wal/0000000100000000/000000010000000000000001." + sum + ".zst.age",
		"wal/0000000100000000/000000010000000000000002." + sum + ".zst.age",
		"wal/0000000200000000/00000002.history." + sum + ".zst.age",
	} {
		if err := st.Put(t.Context(), k, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	ix, err = wal.LoadIndex(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	name, at := ix.Newest()
	if name != "000000010000000000000002" || at.IsZero() || time.Since(at) > time.Hour {
		t.Fatalf("Newest = %q %v, want the second segment (not the history file)", name, at)
	}
}

func TestIndexOldestMissing(t *testing.T) {
	sum := strings.Repeat("b", 64)
	key := func(seg string) string { return "wal/" + seg[:16] + "/" + seg + "." + sum + ".zst.age" }
	primary, offsite := storagetest.NewMemory(), storagetest.NewMemory()
	for _, seg := range []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003"} {
		if err := primary.Put(t.Context(), key(seg), strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := offsite.Put(t.Context(), key("000000010000000000000001"), strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	load := func(st *storagetest.Memory) *wal.Index {
		ix, err := wal.LoadIndex(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		return ix
	}
	p, o := load(primary), load(offsite)
	if name, at := p.OldestMissing(o); name != "000000010000000000000002" || at.IsZero() {
		t.Fatalf("OldestMissing = %q %v, want segment 2", name, at)
	}
	if name, _ := o.OldestMissing(p); name != "" {
		t.Fatalf("the primary holds everything the offsite has, OldestMissing = %q", name)
	}
}
