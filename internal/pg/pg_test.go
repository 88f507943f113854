package pg

import "testing"

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"16MB", 16 << 20, true},
		{"1GB", 1 << 30, true},
		{"512kB", 512 << 10, true},
		{"8192B", 8192, true},
		{"2TB", 2 << 40, true},
		{"16", 0, false},
		{"MB", 0, false},
		{"16 MB", 0, false},
		{"16mb", 0, false},
		{"", 0, false},
		{"99999999999TB", 0, false},
	}
	for _, tc := range tests {
		got, err := parseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func TestMajorVersion(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"15.18 (Debian 15.18-0+deb12u1)", 15},
		{"14.12", 14},
		{"16beta1", 16},
		{"18devel", 18},
		{"9.6.24", 9},
		{"", -1},
		{"PostgreSQL", -1},
	}
	for _, tc := range tests {
		got, err := majorVersion(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("majorVersion(%q) = %d, want an error", tc.in, got)
			}
		} else if err != nil || got != tc.want {
			t.Errorf("majorVersion(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}
