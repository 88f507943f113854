package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pitr.yaml")
	os.WriteFile(path, []byte("repo: file:///from/file\npush_concurrency: 2\nage_recipients: [age1a, age1b]\nretry_timeout: 10s\n"), 0o600)
	c, err := Load(path, lookup(map[string]string{"PITR_REPO": "s3://bucket/x", "PITR_FETCH_PREFETCH": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Repo != "s3://bucket/x" || c.PushConcurrency != 2 || c.FetchPrefetch != 3 || len(c.AgeRecipients) != 2 || c.RetryTimeout != 10*time.Second {
		t.Fatalf("got %+v", c)
	}
	if c.ZstdLevel != 1 || c.Encryption != "age" {
		t.Fatalf("defaults lost: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("repoo: file:///x\n"), 0o600)
	if _, err := Load(typo, lookup(nil)); err == nil || !strings.Contains(err.Error(), "repoo") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), lookup(nil)); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := Load("", lookup(map[string]string{"PITR_PUSH_CONCURRENCY": "many"})); err == nil || !strings.Contains(err.Error(), "PITR_PUSH_CONCURRENCY") {
		t.Fatalf("bad env: %v", err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	if _, err := Load(empty, lookup(nil)); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Repo = "" }, "no repository"},
		{func(c *Config) { c.Repo = "/var/lib/pitr" }, "want s3://"},
		{func(c *Config) { c.Encryption = "aes" }, "encryption"},
		{func(c *Config) { c.ZstdLevel = 9 }, "zstd_level"},
		{func(c *Config) { c.PushConcurrency = 0 }, "push_concurrency"},
		{func(c *Config) { c.LogFormat = "xml" }, "log_format"},
	}
	for _, tt := range tests {
		c := Default()
		c.Repo = "file:///tmp/x"
		tt.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want mention of %q", err, tt.want)
		}
	}
}

func TestSettingsDocumented(t *testing.T) {
	for _, s := range Settings() {
		if s.Key == "" || s.Doc == "" || !strings.HasPrefix(s.Env, "PITR_") {
			t.Errorf("setting %+v lacks key or doc", s)
		}
	}
}
