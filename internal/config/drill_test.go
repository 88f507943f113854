package config

import (
	"strings"
	"testing"
)

func TestDrillSection(t *testing.T) {
	c, err := Load(writeFile(t, `repo: file:///a
drill:
  schedule: "0 4 * * 0"
  checks:
    - db: app
      sql: SELECT count(*) FROM users
    - db: app
      sql: SELECT 1 FROM orders LIMIT 1
      min: 0
`), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := c.Drill
	if d == nil || d.Schedule != "0 4 * * 0" || len(d.Checks) != 2 || d.Checks[0].Min != 1 || d.Checks[1].Min != 0 || d.Checks[0].DB != "app" || d.User != "postgres" {
		t.Fatalf("drill = %+v", d)
	}
	if Default().Drill != nil {
		t.Error("Default() has a drill section")
	}
	for _, tc := range []struct{ yaml, want string }{
		{"drill:\n  checks:\n    - sql: SELECT 1\n", "drill.checks[0].db: not set"},
		{"drill:\n  checks:\n    - db: app\n", "drill.checks[0].sql: not set"},
		{"drill:\n  schedule: nonsense\n", `drill.schedule "nonsense"`},
	} {
		c, err := Load(writeFile(t, "repo: file:///a\n"+tc.yaml), lookup(nil))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := Load(writeFile(t, "repo: file:///a\n"), lookup(map[string]string{"PITR_DRILL_SCHEDULE": "@daily"})); err == nil {
		t.Error("PITR_DRILL_SCHEDULE accepted; sections are read from the file only")
	}
}
