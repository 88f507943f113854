package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// Monitoring (issue 11: pitr check, pitr status and the daemon's metrics
// of other clusters' repositories).

// Check holds pitr check's thresholds: for each age a warning and a
// critical limit, 0 leaving that level out (both 0: not checked). Flags
// override them one by one.
type Check struct {
	WarnBackupAge time.Duration `yaml:"warn_backup_age" default:"26h" doc:"WARNING when the newest usable base backup ended longer ago than this"`
	MaxBackupAge  time.Duration `yaml:"max_backup_age" default:"48h" doc:"CRITICAL when the newest usable base backup ended longer ago than this"`
	WarnWALAge    time.Duration `yaml:"warn_wal_age" default:"5m" doc:"WARNING when the newest WAL was stored longer ago than this (the current RPO)"`
	MaxWALAge     time.Duration `yaml:"max_wal_age" default:"15m" doc:"CRITICAL when the newest WAL was stored longer ago than this"`
	WarnDumpAge   time.Duration `yaml:"warn_dump_age" default:"26h" doc:"WARNING when a database's newest dump ended longer ago than this"`
	MaxDumpAge    time.Duration `yaml:"max_dump_age" default:"48h" doc:"CRITICAL when a database's newest dump ended longer ago than this"`
	WarnFilesAge  time.Duration `yaml:"warn_files_age" default:"26h" doc:"WARNING when a file set's newest snapshot ended longer ago than this"`
	MaxFilesAge   time.Duration `yaml:"max_files_age" default:"48h" doc:"CRITICAL when a file set's newest snapshot ended longer ago than this"`
	WarnVerifyAge time.Duration `yaml:"warn_verify_age" default:"192h" doc:"WARNING when the last pitr verify is older than this, or there is none; a failed one is CRITICAL"`
	MaxVerifyAge  time.Duration `yaml:"max_verify_age" default:"360h" doc:"CRITICAL when the last pitr verify is older than this"`
	WarnDrillAge  time.Duration `yaml:"warn_drill_age" default:"192h" doc:"WARNING when the last restore drill is older than this, or there is none; a failed one is CRITICAL"`
	MaxDrillAge   time.Duration `yaml:"max_drill_age" default:"360h" doc:"CRITICAL when the last restore drill is older than this"`
	WarnCopyLag   time.Duration `yaml:"warn_copy_lag" default:"1h" doc:"WARNING when the off-site repository has lacked something of the primary for longer than this"`
	MaxCopyLag    time.Duration `yaml:"max_copy_lag" default:"6h" doc:"CRITICAL when the off-site repository has lacked something of the primary for longer than this"`
}

// DefaultCheck returns pitr check's default thresholds (a config
// without a check: section).
func DefaultCheck() Check {
	var c Check
	setDefaults(reflect.ValueOf(&c).Elem())
	return c
}

// Monitored is one entry of monitor:, a repository pitr status, pitr
// check and the daemon watch (another cluster's, on a monitoring host).
// Its repository keys are those of offsite:; unlike there, an unset one
// is the top-level setting's (see Config.MonitoredRepository), so a fleet
// in one bucket lists only its prefixes.
type Monitored struct {
	Name                  string `yaml:"name" doc:"the cluster's label in output and metrics (default: the repository prefix's last element): letters, digits, _, - and ."`
	Repo                  string `yaml:"repo"`
	S3Endpoint            string `yaml:"s3_endpoint"`
	S3ForcePathStyle      *bool  `yaml:"s3_force_path_style"`
	S3Region              string `yaml:"s3_region"`
	S3SSE                 string `yaml:"s3_sse"`
	S3SSEKMSKeyID         string `yaml:"s3_sse_kms_key_id"`
	S3StorageClass        string `yaml:"s3_storage_class"`
	S3NoConditionalWrites *bool  `yaml:"s3_no_conditional_writes"`
}

// Repository returns m's repository settings, as given.
func (m Monitored) Repository() Repository {
	return Repository{Repo: m.Repo, S3Endpoint: m.S3Endpoint, S3ForcePathStyle: m.S3ForcePathStyle, S3Region: m.S3Region,
		S3SSE: m.S3SSE, S3SSEKMSKeyID: m.S3SSEKMSKeyID, S3StorageClass: m.S3StorageClass, S3NoConditionalWrites: m.S3NoConditionalWrites}
}

// MonitoredRepository returns m's repository settings with each unset
// one taken from the top-level settings.
func (c *Config) MonitoredRepository(m Monitored) Repository {
	r, top := m.Repository(), c.Primary()
	or := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	r.S3Endpoint, r.S3Region = or(r.S3Endpoint, top.S3Endpoint), or(r.S3Region, top.S3Region)
	r.S3SSE, r.S3SSEKMSKeyID, r.S3StorageClass = or(r.S3SSE, top.S3SSE), or(r.S3SSEKMSKeyID, top.S3SSEKMSKeyID), or(r.S3StorageClass, top.S3StorageClass)
	if r.S3ForcePathStyle == nil {
		r.S3ForcePathStyle = top.S3ForcePathStyle
	}
	if r.S3NoConditionalWrites == nil {
		r.S3NoConditionalWrites = top.S3NoConditionalWrites
	}
	return r
}

// ClusterName is the label of the repository at url: its prefix's last
// element ("db1" for s3://bucket/fleet/db1), else the bucket or
// directory name.
func ClusterName(url string) string {
	rest := url
	if _, after, ok := strings.Cut(url, "://"); ok {
		rest = after
	}
	rest = strings.TrimRight(rest, "/")
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		rest = rest[i+1:]
	}
	if rest == "" {
		return url
	}
	return rest
}

var clusterName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// ValidateMonitor checks check: and monitor:; a config that only
// monitors (no repo) is valid when these are.
func (c *Config) ValidateMonitor() error {
	if c.Check != nil {
		if err := c.Check.validate(); err != nil {
			return err
		}
	}
	first := map[string]int{}
	for i, m := range c.Monitor {
		key := fmt.Sprintf("monitor[%d]", i)
		if err := m.Repository().validate(key + "."); err != nil {
			return err
		}
		name := m.Name
		if name == "" {
			name = ClusterName(m.Repo)
		}
		if !clusterName.MatchString(name) {
			return fmt.Errorf("%s.name %q: want only letters, digits, '_', '-' and '.' in it", key, name)
		}
		if j, ok := first[name]; ok {
			return fmt.Errorf("%s: cluster name %q is used twice (first in monitor[%d]); set name", key, name, j)
		}
		first[name] = i
	}
	return nil
}

// validate checks the thresholds: none negative, and a warning limit
// below its critical one.
func (c Check) validate() error {
	v := reflect.ValueOf(c)
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).Int() < 0 {
			return fmt.Errorf("check.%s: must be 0 or more", v.Type().Field(i).Tag.Get("yaml"))
		}
	}
	for i := 0; i+1 < v.NumField(); i += 2 {
		w, m := time.Duration(v.Field(i).Int()), time.Duration(v.Field(i+1).Int())
		if w > 0 && m > 0 && w > m {
			return fmt.Errorf("check.%s %s is above check.%s %s", v.Type().Field(i).Tag.Get("yaml"), w, v.Type().Field(i+1).Tag.Get("yaml"), m)
		}
	}
	return nil
}
