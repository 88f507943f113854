package s3

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestLockOptions(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		days    int
		want    types.ObjectLockMode
		wantErr string
	}{
		{"", 0, "", ""},
		{"governance", 1, types.ObjectLockModeGovernance, ""},
		{"COMPLIANCE", 30, types.ObjectLockModeCompliance, ""},
		{"governance", 0, "", "object lock days 0: want at least 1"},
		{"", 3, "", "object lock days without an object lock mode"},
		{"legal-hold", 1, "", `object lock mode "legal-hold": want governance or compliance`},
	} {
		s, err := newStore(Options{Bucket: "b", ObjectLockMode: tc.mode, ObjectLockDays: tc.days})
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%q %d: err %v, want %q", tc.mode, tc.days, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q %d: %v", tc.mode, tc.days, err)
		}
		if s.lockMode != tc.want {
			t.Errorf("%q: mode %q, want %q", tc.mode, s.lockMode, tc.want)
		}
	}
}

func TestLockInput(t *testing.T) {
	s, err := newStore(Options{Bucket: "b", ObjectLockMode: "governance", ObjectLockDays: 2})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 10, 0, 0, 500, time.FixedZone("x", 3600))
	s.now = func() time.Time { return now }
	mode, until := s.lockInput()
	if want := time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC); mode != types.ObjectLockModeGovernance || until == nil || !until.Equal(want) {
		t.Errorf("lockInput = %q %v, want GOVERNANCE %s", mode, until, want)
	}
	s.lockMode = ""
	if mode, until := s.lockInput(); mode != "" || until != nil {
		t.Errorf("without lock: %q %v", mode, until)
	}
}
