package config

import "fmt"

// Drill is the drill: section, read by pitr verify --restore-drill and by
// pitr daemon (issue 11 item 3, restore drills).
type Drill struct {
	Schedule string       `yaml:"schedule" doc:"when pitr daemon runs a restore drill, like backup_schedule; empty (the default) disables; the daemon then needs age_identity_file"`
	Dir      string       `yaml:"dir" doc:"directory the drill's scratch directory is made in: it holds a full restored copy of the cluster while the drill runs (default: the system's temporary directory)"`
	User     string       `yaml:"user" default:"postgres" doc:"role the drill's amcheck and SQL checks connect as, over the copy's private socket (a superuser of the cluster)"`
	Checks   []DrillCheck `yaml:"checks" doc:"SQL checks run on the restored copy; each must pass"`
}

// DrillCheck is one entry of drill.checks.
type DrillCheck struct {
	DB  string `yaml:"db" doc:"required: the database the query runs in"`
	SQL string `yaml:"sql" doc:"required: a query, run read-only; the first column of its first row must be a number of at least min, or, if it is not a number, a row must come back"`
	Min int    `yaml:"min" default:"1" doc:"the least value the query's number may have"`
}

// validate checks the drill: section; a nil one is valid.
func (d *Drill) validate() error {
	if d == nil {
		return nil
	}
	if _, err := ParseSchedule(d.Schedule); err != nil {
		return fmt.Errorf("drill.schedule %q: %v", d.Schedule, err)
	}
	for i, c := range d.Checks {
		switch {
		case c.DB == "":
			return fmt.Errorf("drill.checks[%d].db: not set; want the database the query runs in", i)
		case len(c.DB) > 63:
			return fmt.Errorf("drill.checks[%d].db: %q is longer than 63 bytes", i, c.DB)
		case c.SQL == "":
			return fmt.Errorf("drill.checks[%d].sql: not set; want a query such as SELECT count(*) FROM users", i)
		}
	}
	return nil
}
