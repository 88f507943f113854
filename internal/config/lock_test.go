package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateObjectLock(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want string // "" for valid
	}{
		{"repo: s3://b/p\ns3_object_lock: governance\n", ""},
		{"repo: s3://b/p\ns3_object_lock: compliance\ns3_object_lock_days: 30\n", ""},
		{"repo: file:///srv/pitr\ns3_object_lock: governance\n", "s3_object_lock governance: repository file:///srv/pitr is not on S3; Object Lock needs an s3:// repository"},
		{"repo: s3://b/p\ns3_object_lock: GOVERNANCE\n", `s3_object_lock "GOVERNANCE": want governance or compliance (or empty: off)`},
		{"repo: s3://b/p\ns3_object_lock_days: 7\n", "s3_object_lock_days 7: set s3_object_lock (governance or compliance) too"},
		{"repo: s3://b/p\ns3_object_lock: governance\ns3_object_lock_days: -1\n", "s3_object_lock_days -1: want 0 (from the backup retention policy) to 36500"},
		{"repo: s3://b/p\noffsite:\n  repo: file:///srv/copy\n  s3_object_lock: compliance\n", "offsite.s3_object_lock compliance: repository file:///srv/copy is not on S3"},
	} {
		c, err := Load(writeFile(t, tt.yaml), lookup(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.yaml, err)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("%q: Validate() = %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

func TestObjectLockDays(t *testing.T) {
	for _, tt := range []struct {
		days   int
		policy *Policy
		want   int
	}{
		{0, nil, 1},
		{0, &Policy{KeepLast: 3}, 1},
		{0, &Policy{KeepDaily: 7}, 7},
		{0, &Policy{KeepDaily: 7, KeepWeekly: 4}, 28},
		{0, &Policy{KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 6}, 186},
		{0, &Policy{KeepYearly: 2, KeepMonthly: 12}, 732},
		{0, &Policy{KeepWithin: 36 * time.Hour}, 2},
		{0, &Policy{KeepWithin: 40 * 24 * time.Hour, KeepWeekly: 5}, 40},
		{10, &Policy{KeepYearly: 5}, 10},
	} {
		c := Default()
		c.Retention.Backups = tt.policy
		r := Repository{Repo: "s3://b", S3ObjectLock: "governance", S3ObjectLockDays: tt.days}
		if got := c.ObjectLockDays(r); got != tt.want {
			t.Errorf("days %d, policy %+v: ObjectLockDays = %d, want %d", tt.days, tt.policy, got, tt.want)
		}
	}
}
