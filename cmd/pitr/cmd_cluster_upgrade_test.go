package main

import (
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestWALNamesFree(t *testing.T) {
	st := storagetest.NewMemory()
	codec := &envelope.Codec{Level: 1}
	for _, name := range []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003.partial", "00000002.history", "000000020000000000000007"} {
		if _, err := repo.New(st, codec).StoreWAL(t.Context(), name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	const seg = 16 << 20
	for _, tt := range []struct{ first, refused string }{
		{"000000010000000000000001", "pg_resetwal -l 000000010000000000000004"}, // a new initdb
		{"000000010000000000000003", "up to 000000010000000000000003"},          // the .partial counts
		{"000000010000000000000004", ""},                                        // after pg_upgrade
		{"000000020000000000000008", ""},                                        // another timeline's range
		{"000000030000000000000001", ""},
	} {
		err := walNamesFree(t.Context(), st, tt.first, seg)
		switch {
		case tt.refused == "" && err != nil:
			t.Errorf("from %s: %v, want no collision", tt.first, err)
		case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
			t.Errorf("from %s: %v, want a refusal naming %q", tt.first, err, tt.refused)
		}
	}
}

func TestPGVersion(t *testing.T) {
	for v, want := range map[int]string{150004: "15.4", 170000: "17.0", 90624: "9.6.24", 0: "unknown"} {
		if got := pgVersion(v); got != want {
			t.Errorf("pgVersion(%d) = %s, want %s", v, got, want)
		}
	}
}
