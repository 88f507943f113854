package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"
)

// App is one entry of apps: (issue 12, app part): the parts of one
// application backed up together, to one consistent point, by pitr app
// backup NAME.
type App struct {
	Name     string              `yaml:"name" doc:"required, unique: lower-case letters, digits, _ and -, starting with a letter or digit; names the app's points"`
	Database AppDatabase         `yaml:"database" doc:"the app's PostgreSQL: the cluster pitr protects (a restore point) and/or databases kept as logical dumps"`
	Files    []string            `yaml:"files" doc:"names of the file sets (files:) of the app, snapshotted after the database point"`
	Hooks    AppHooks            `yaml:"hooks" doc:"commands run before the file snapshots (e.g. redis-cli --rdb FILE) and after them (always, also after a failure)"`
	Versions map[string][]string `yaml:"versions" doc:"name: command (argv list) whose trimmed output is recorded in each app point, e.g. app: [cat, /srv/app/VERSION]; postgresql is recorded automatically"`
	Schedule string              `yaml:"schedule" doc:"when pitr daemon backs up the app, like backup_schedule; empty: not scheduled"`
}

// AppDatabase is apps[].database.
type AppDatabase struct {
	Cluster bool     `yaml:"cluster" doc:"the app's data is in the cluster pitr protects with WAL and base backups: each app point takes a restore point (pg_create_restore_point) in it"`
	Dumps   []string `yaml:"dumps" doc:"databases dumped (pg_dump) for each app point"`
	PGData  string   `yaml:"pgdata" doc:"the cluster's data directory, recorded for pitr app restore (absolute path; optional)"`
}

// AppHooks is apps[].hooks.
type AppHooks struct {
	Before []Hook `yaml:"before" doc:"run in order after the database point, before the file snapshots; a failure ends the backup without an app point"`
	After  []Hook `yaml:"after" doc:"run in order after the snapshots and dumps, also when the backup failed; a failure fails the backup"`
}

// Hook is one command of apps[].hooks.
type Hook struct {
	Name    string        `yaml:"name" doc:"required: names the hook in logs and in the app point"`
	Command []string      `yaml:"command" doc:"required: argv list, run without a shell (write [sh, -c, '...'] for one); its output is logged line by line"`
	Timeout time.Duration `yaml:"timeout" default:"5m" doc:"the hook is killed, and fails, after this long"`
}

// reservedVersions are recorded by pitr itself in every app point.
var reservedVersions = map[string]bool{"postgresql": true, "postgresql_num": true}

// App returns the app named name, or nil.
func (c *Config) App(name string) *App {
	for i := range c.Apps {
		if c.Apps[i].Name == name {
			return &c.Apps[i]
		}
	}
	return nil
}

// validateApps checks apps:, one line per problem (all of them, joined).
func (c *Config) validateApps() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	sets := map[string]bool{}
	for _, fs := range c.Files {
		sets[fs.Name] = true
	}
	first := map[string]int{}
	for i, a := range c.Apps {
		key := fmt.Sprintf("apps[%d]", i)
		switch {
		case a.Name == "":
			bad("%s.name: not set; want lower-case letters, digits, _ and -, starting with a letter or digit", key)
		case !fileSetName.MatchString(a.Name):
			bad("%s.name %q: want lower-case letters, digits, _ and -, starting with a letter or digit", key, a.Name)
		default:
			if j, ok := first[a.Name]; ok {
				bad("%s.name %q is used twice (first in apps[%d])", key, a.Name, j)
			} else {
				first[a.Name] = i
			}
		}
		if !a.Database.Cluster && len(a.Database.Dumps) == 0 && len(a.Files) == 0 {
			bad("%s: nothing to back up; set database.cluster, database.dumps or files", key)
		}
		seen := map[string]bool{}
		for _, db := range a.Database.Dumps {
			switch {
			case db == "" || len(db) > 63:
				bad("%s.database.dumps: %q: want a database name of 1 to 63 bytes", key, db)
			case seen[db]:
				bad("%s.database.dumps: %q is listed twice", key, db)
			}
			seen[db] = true
		}
		if a.Database.PGData != "" && !filepath.IsAbs(a.Database.PGData) {
			bad("%s.database.pgdata: %q is not an absolute path", key, a.Database.PGData)
		}
		seen = map[string]bool{}
		for _, s := range a.Files {
			switch {
			case !sets[s]:
				bad("%s.files: %q is not a file set of files:", key, s)
			case seen[s]:
				bad("%s.files: %q is listed twice", key, s)
			}
			seen[s] = true
		}
		for _, h := range []struct {
			when  string
			hooks []Hook
		}{{"before", a.Hooks.Before}, {"after", a.Hooks.After}} {
			for j, hk := range h.hooks {
				hkey := fmt.Sprintf("%s.hooks.%s[%d]", key, h.when, j)
				if hk.Name == "" {
					bad("%s.name: not set; want a name for the hook's logs", hkey)
				}
				if len(hk.Command) == 0 || hk.Command[0] == "" {
					bad("%s.command: not set; want an argv list such as [redis-cli, --rdb, /var/backups/dump.rdb]", hkey)
				}
				if hk.Timeout <= 0 {
					bad("%s.timeout %s: want a positive duration such as 5m", hkey, hk.Timeout)
				}
			}
		}
		names := make([]string, 0, len(a.Versions))
		for n := range a.Versions {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			switch {
			case !fileSetName.MatchString(n):
				bad("%s.versions: name %q: want lower-case letters, digits, _ and -", key, n)
			case reservedVersions[n]:
				bad("%s.versions: %s is recorded by pitr itself; choose another name", key, n)
			case len(a.Versions[n]) == 0 || a.Versions[n][0] == "":
				bad("%s.versions.%s: no command; want an argv list such as [cat, /etc/os-release]", key, n)
			}
		}
		if _, err := ParseSchedule(a.Schedule); err != nil {
			bad("%s.schedule %q: %v", key, a.Schedule, err)
		}
	}
	return errors.Join(errs...)
}
