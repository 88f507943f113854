package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMonitorSections(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pitr.yaml")
	yml := `check:
  max_backup_age: 30h
  warn_drill_age: 0s
monitor:
  - repo: s3://fleet/db1
    s3_endpoint: http://127.0.0.1:9000
  - name: billing
    repo: s3://fleet/db2
`
	if err := os.WriteFile(f, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(f, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ValidateMonitor(); err != nil {
		t.Fatal(err)
	}
	if c.Check.MaxBackupAge != 30*time.Hour || c.Check.WarnBackupAge != 26*time.Hour || c.Check.WarnDrillAge != 0 || c.Check.MaxDrillAge != 360*time.Hour {
		t.Errorf("check %+v: want defaults for what the file leaves out", c.Check)
	}
	if len(c.Monitor) != 2 || c.Monitor[0].Repository().S3Endpoint != "http://127.0.0.1:9000" || c.Monitor[1].Name != "billing" {
		t.Errorf("monitor %+v", c.Monitor)
	}
	if d := DefaultCheck(); d.WarnWALAge != 5*time.Minute || d.MaxCopyLag != 6*time.Hour {
		t.Errorf("DefaultCheck %+v", d)
	}
}

func TestMonitorValidate(t *testing.T) {
	for _, tt := range []struct {
		c    Config
		want string
	}{
		{Config{Monitor: []Monitored{{Repo: "s3://a/db1"}, {Repo: "s3://b/db1"}}}, `monitor[1]: cluster name "db1" is used twice (first in monitor[0]); set name`},
		{Config{Monitor: []Monitored{{Repo: "http://x"}}}, `monitor[0].repo "http://x": want s3://bucket/prefix or file:///absolute/path`},
		{Config{Monitor: []Monitored{{Name: "a b", Repo: "s3://a/x"}}}, `monitor[0].name "a b": want only letters, digits, '_', '-' and '.' in it`},
		{Config{Check: &Check{WarnWALAge: time.Hour, MaxWALAge: time.Minute}}, "check.warn_wal_age 1h0m0s is above check.max_wal_age 1m0s"},
		{Config{Check: &Check{MaxDumpAge: -time.Second}}, "check.max_dump_age: must be 0 or more"},
	} {
		err := tt.c.ValidateMonitor()
		if err == nil || err.Error() != tt.want {
			t.Errorf("ValidateMonitor(%+v) = %v, want %s", tt.c, err, tt.want)
		}
	}
}

func TestClusterName(t *testing.T) {
	for url, want := range map[string]string{
		"s3://bucket/fleet/db1": "db1", "s3://bucket/db2/": "db2", "s3://bucket": "bucket", "file:///var/backups/pg": "pg",
	} {
		if got := ClusterName(url); got != want {
			t.Errorf("ClusterName(%s) = %s, want %s", url, got, want)
		}
	}
}

func TestMonitoredRepositoryInherits(t *testing.T) {
	c := Default()
	c.S3Endpoint, c.S3Region = "http://minio:9000", "eu-west-1"
	yes := true
	r := c.MonitoredRepository(Monitored{Repo: "s3://b/db1", S3Region: "us-east-2", S3ForcePathStyle: &yes})
	if r.Repo != "s3://b/db1" || r.S3Endpoint != "http://minio:9000" || r.S3Region != "us-east-2" || !*r.S3ForcePathStyle ||
		r.S3NoConditionalWrites == nil || *r.S3NoConditionalWrites {
		t.Errorf("MonitoredRepository = %+v", r)
	}
}
