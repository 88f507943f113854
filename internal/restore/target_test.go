package restore

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func TestParseTarget(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	for _, tc := range []struct {
		in       string
		want     Target
		str      string // String(); "" means in
		settings []Setting
	}{
		{"latest", Target{}, "", nil},
		{" latest\n", Target{}, "latest", nil},
		{"immediate", Target{Kind: Immediate}, "", []Setting{{"recovery_target", "immediate"}}},
		{"2026-11-22T14:01:00Z", Target{Kind: Time, Time: at("2026-11-22T14:01:00Z")}, "",
			[]Setting{{"recovery_target_time", "2026-11-22 14:01:00.000000+00"}}},
		{"2026-11-22T15:01:00.123456+01:00", Target{Kind: Time, Time: at("2026-11-22T14:01:00.123456Z")}, "2026-11-22T14:01:00.123456Z",
			[]Setting{{"recovery_target_time", "2026-11-22 14:01:00.123456+00"}}},
		// Nanoseconds: PostgreSQL has microseconds; truncating keeps the same commits.
		{"2026-11-22T14:01:00.123456789Z", Target{Kind: Time, Time: at("2026-11-22T14:01:00.123456Z")}, "2026-11-22T14:01:00.123456Z",
			[]Setting{{"recovery_target_time", "2026-11-22 14:01:00.123456+00"}}},
		{"2026-11-22 14:01:00", Target{Kind: Time, Time: at("2026-11-22T14:01:00Z")}, "2026-11-22T14:01:00Z", nil},
		{"2026-11-22 14:01:00.5+00", Target{Kind: Time, Time: at("2026-11-22T14:01:00.5Z")}, "2026-11-22T14:01:00.5Z",
			[]Setting{{"recovery_target_time", "2026-11-22 14:01:00.500000+00"}}},
		{"2026-11-22 19:31:00+05:30", Target{Kind: Time, Time: at("2026-11-22T14:01:00Z")}, "2026-11-22T14:01:00Z", nil},
		{"2026-11-22 06:01:00.25-0800", Target{Kind: Time, Time: at("2026-11-22T14:01:00.25Z")}, "2026-11-22T14:01:00.25Z", nil},
		{"2026-11-22 11:01:00-03", Target{Kind: Time, Time: at("2026-11-22T14:01:00Z")}, "2026-11-22T14:01:00Z", nil},
		{"lsn:0/3000028", Target{Kind: LSN, LSN: 0x3000028}, "", []Setting{{"recovery_target_lsn", "0/3000028"}}},
		{"lsn:1a/ff000000", Target{Kind: LSN, LSN: pglogrepl.LSN(0x1a_ff000000)}, "lsn:1A/FF000000",
			[]Setting{{"recovery_target_lsn", "1A/FF000000"}}},
		{"xid:1234", Target{Kind: XID, XID: 1234}, "", []Setting{{"recovery_target_xid", "1234"}}},
		{"xid:4294968530", Target{Kind: XID, XID: 4294968530}, "", []Setting{{"recovery_target_xid", "4294968530"}}},
		{"name:before_upgrade", Target{Kind: Name, Name: "before_upgrade"}, "", []Setting{{"recovery_target_name", "before_upgrade"}}},
		{`name:it's a \ name: with colon`, Target{Kind: Name, Name: `it's a \ name: with colon`}, "",
			[]Setting{{"recovery_target_name", `it's a \ name: with colon`}}},
	} {
		got, err := ParseTarget(tc.in)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseTarget(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		str := tc.str
		if str == "" {
			str = tc.in
		}
		if got.String() != str {
			t.Errorf("ParseTarget(%q).String() = %q, want %q", tc.in, got.String(), str)
		}
		if again, err := ParseTarget(got.String()); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseTarget(%q) does not read back: %+v, %v", got.String(), again, err)
		}
		if tc.settings != nil || tc.want.Kind == Latest {
			if s := got.Settings(); !reflect.DeepEqual(s, tc.settings) {
				t.Errorf("ParseTarget(%q).Settings() = %q, want %q", tc.in, s, tc.settings)
			}
		}
	}
}

func TestParseTargetRefuses(t *testing.T) {
	for _, in := range []string{
		"", "Latest", "now", "yesterday", "1700000000",
		"2026-11-22", "2026-11-22T14:01:00", "2026-13-22 14:01:00", "2026-11-22 25:01:00",
		"2026-11-22 14:01:00 UTC", "2026-11-22 14:01:00+16", "2026-11-22 14:01:00+05:60", "2026-11-22  14:01:00",
		"lsn:", "lsn:3000028", "lsn:0/", "lsn:0/3000028x", "lsn:100000000/0", "lsn:+0/1", "lsn:0/-1",
		"xid:", "xid:0", "xid:2", "xid:-5", "xid:12ab", "xid:4294967296",
		"name:", "name:" + strings.Repeat("x", 64), "name:a\nb", "name:a\x00b",
		"time:2026-11-22T14:01:00Z",
	} {
		_, err := ParseTarget(in)
		if err == nil {
			t.Errorf("ParseTarget(%q) accepted", in)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseTarget(%q): error is not one line: %q", in, err)
		}
	}
	_, err := ParseTarget("soon")
	if err == nil || !strings.Contains(err.Error(), "lsn:0/3000028") || !strings.Contains(err.Error(), "immediate") {
		t.Errorf("error does not list the accepted forms: %v", err)
	}
}

func TestNameFitsRestorePoint(t *testing.T) {
	name := strings.Repeat("x", maxRestorePointName)
	if _, err := ParseTarget("name:" + name); err != nil {
		t.Errorf("63-byte restore point name refused: %v", err)
	}
}
