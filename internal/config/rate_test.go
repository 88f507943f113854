package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseByteRate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ByteRate
		err  string // a part of the error; "" for none
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"  0MiB ", 0, ""},
		{"2000000", 2000000, ""},
		{"50MiB", 50 << 20, ""},
		{"50mib", 50 << 20, ""},
		{"50 MiB/s", 50 << 20, ""},
		{"1.5MB", 1500000, ""},
		{"800KiB", 800 << 10, ""},
		{"800kb", 800000, ""},
		{"2GiB", 2 << 30, ""},
		{"1TB", 1e12, ""},
		{"512B", 512, ""},
		{"1.5KiB", 1536, ""},
		{".5KiB", 512, ""},
		{"50MeB", 0, "not a rate"},
		{"MiB", 0, "not a rate"},
		{"-1MiB", 0, "not a rate"},
		{"+1", 0, "not a rate"},
		{"1e6", 0, "not a rate"},
		{"0x10", 0, "not a rate"},
		{"inf", 0, "not a rate"},
		{"NaN", 0, "not a rate"},
		{"1.2.3", 0, "not a rate"},
		{"fast", 0, "not a rate"},
		{"0.4", 0, "less than 1 byte"},
		{"99999999TiB", 0, "too large"},
	} {
		got, err := ParseByteRate(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("ParseByteRate(%q): %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseByteRate(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
		case tt.err != "" && (strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "50MiB") && strings.Contains(tt.err, "not a rate")):
			t.Errorf("ParseByteRate(%q): %q is not one line showing the form", tt.in, err)
		case got != tt.want:
			t.Errorf("ParseByteRate(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestByteRateString: String reads back as the same rate (pitr config and
// child processes pass it on as a variable).
func TestByteRateString(t *testing.T) {
	for _, tt := range []struct {
		r    ByteRate
		want string
	}{{0, "0"}, {1, "1"}, {1000, "1000"}, {1536, "1536"}, {50 << 20, "50MiB"}, {800 << 10, "800KiB"}, {3 << 30, "3GiB"}, {1 << 40, "1TiB"}} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("ByteRate(%d).String() = %q, want %q", int64(tt.r), got, tt.want)
		}
		if back, err := ParseByteRate(tt.r.String()); err != nil || back != tt.r {
			t.Errorf("ParseByteRate(%q) = %d, %v; want %d", tt.r.String(), back, err, tt.r)
		}
	}
}

// TestLoadLimits: the limits come from the file and from PITR_LIMIT_*
// variables (which win), a bad value names its setting on one line, and
// Changed passes a set limit on.
func TestLoadLimits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pitr.yaml")
	if err := os.WriteFile(path, []byte("limit_upload: 20MiB\nlimit_download: 1000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, lookup(map[string]string{"PITR_LIMIT_DOWNLOAD": "1.5MB"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.LimitUpload != 20<<20 || c.LimitDownload != 1500000 {
		t.Errorf("limits %d, %d; want %d, 1500000", c.LimitUpload, c.LimitDownload, 20<<20)
	}
	if got := c.Changed(); got["limit_upload"] != "20MiB" || got["limit_download"] != "1500000" {
		t.Errorf("Changed() = %v", got)
	}
	if d := Default(); d.LimitUpload != 0 || d.LimitDownload != 0 {
		t.Errorf("default limits %d, %d; want unlimited", d.LimitUpload, d.LimitDownload)
	}

	_, err = Load("", lookup(map[string]string{"PITR_LIMIT_UPLOAD": "50MeB"}))
	if err == nil || !strings.HasPrefix(err.Error(), "PITR_LIMIT_UPLOAD: ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("bad variable: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("limit_upload: [1]\nlimit_download: fast\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, lookup(nil)); err == nil || !strings.Contains(err.Error(), "line 1: limit_upload: want a rate like 50MiB") {
		t.Errorf("bad file: %v", err)
	}
	var r Config
	if err := r.Set("limit_upload", "64KiB"); err != nil || r.LimitUpload != 64<<10 {
		t.Errorf("Set: %v, %d", err, r.LimitUpload)
	}
}
