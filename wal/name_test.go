package wal

import "testing"

func TestParseName(t *testing.T) {
	tests := []struct {
		in   string
		kind Kind
		tli  Timeline
		ok   bool
	}{
		{"000000010000000000000001", KindSegment, 1, true},
		{"0000000A00000001000000FF", KindSegment, 10, true},
		{"000000010000000000000001.partial", KindPartial, 1, true},
		{"000000010000000000000002.00000028.backup", KindBackup, 1, true},
		{"00000002.history", KindHistory, 2, true},
		{"00000000.history", 0, 0, false},
		{"000000000000000000000001", 0, 0, false},
		{"00000001000000000000000a", 0, 0, false}, // lower case is not PostgreSQL's
		{"RECOVERYXLOG", 0, 0, false},
		{"../000000010000000000000001", 0, 0, false},
		{"pg_wal/000000010000000000000001", 0, 0, false},
		{"", 0, 0, false},
		{"000000010000000000000001.ready", 0, 0, false},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseName(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (n.Kind != tt.kind || n.Timeline != tt.tli || n.String() != tt.in) {
			t.Errorf("ParseName(%q) = %+v", tt.in, n)
		}
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		in      string
		segSize int64
		want    string
	}{
		{"000000010000000000000001", 16 << 20, "000000010000000000000002"},
		{"0000000100000000000000FF", 16 << 20, "000000010000000100000000"},
		{"000000020000000000000003", 1 << 30, "000000020000000100000000"},
		{"000000010000000000000FFF", 1 << 20, "000000010000000100000000"},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Next(tt.segSize); got != tt.want {
			t.Errorf("%s.Next(%d) = %s, want %s", tt.in, tt.segSize, got, tt.want)
		}
	}
	if ValidSegmentSize(3<<20) || !ValidSegmentSize(16<<20) || ValidSegmentSize(2<<30) {
		t.Error("ValidSegmentSize wrong")
	}
}
