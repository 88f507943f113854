package scratch

import (
	"slices"
	"testing"

	"github.com/pitr-dev/pitr/internal/pgserver"
)

func TestSortedSettings(t *testing.T) {
	got, err := sortedSettings(map[string]string{"wal_level": "replica", "archive_mode": "on", "pitr.x": "1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []pgserver.Setting{{Name: "archive_mode", Value: "on"}, {Name: "pitr.x", Value: "1"}, {Name: "wal_level", Value: "replica"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("setting %d = %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []map[string]string{
		{"a = 1\nb": "x"},
		{"": "x"},
		{"a$b": "x"},
		{"archive_command": "x\ny"},
	} {
		if _, err := sortedSettings(bad); err == nil {
			t.Errorf("sortedSettings(%q) accepted", bad)
		}
	}
}

// A setting of Options.Settings replaces Init's own of that name, rather
// than being refused as given twice.
func TestWithSettings(t *testing.T) {
	base := []pgserver.Setting{{Name: "wal_level", Value: "replica"}, {Name: "max_wal_senders", Value: "10"}}
	got := withSettings(base, []pgserver.Setting{{Name: "WAL_LEVEL", Value: "logical"}})
	want := []pgserver.Setting{{Name: "max_wal_senders", Value: "10"}, {Name: "WAL_LEVEL", Value: "logical"}}
	if !slices.Equal(got, want) {
		t.Errorf("withSettings = %v, want %v", got, want)
	}
	if err := pgserver.CheckSettings(got); err != nil {
		t.Error(err)
	}
}

func TestQuoteDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres", "postgres"},
		{"my db", `'my db'`},
		{`it's`, `'it\'s'`},
		{"", `''`},
	} {
		if got := quoteDSN(tc.in); got != tc.want {
			t.Errorf("quoteDSN(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestLastLines(t *testing.T) {
	if got := LastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("LastLines = %q", got)
	}
	if got := LastLines("a", 5); got != "a" {
		t.Errorf("LastLines = %q", got)
	}
}
