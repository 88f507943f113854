package scratch

import "testing"

func TestQuoteConf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `''`},
		{"on", `'on'`},
		{"/usr/bin/pitr wal-push %p", `'/usr/bin/pitr wal-push %p'`},
		{"it's", `'it''s'`},
		{`C:\dir`, `'C:\\dir'`},
	} {
		if got := quoteConf(tc.in); got != tc.want {
			t.Errorf("quoteConf(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestSortedSettings(t *testing.T) {
	got, err := sortedSettings(map[string]string{"wal_level": "replica", "archive_mode": "on", "pitr.x": "1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []setting{{"archive_mode", "on"}, {"pitr.x", "1"}, {"wal_level", "replica"}}
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
		{"archive_command": "x\ny"},
	} {
		if _, err := sortedSettings(bad); err == nil {
			t.Errorf("sortedSettings(%q) accepted", bad)
		}
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
