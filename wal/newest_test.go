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
