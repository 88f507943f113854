package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pitr.yaml")
	if err := os.WriteFile(path, []byte("repo: file:///from/file\npush_concurrency: 2\nage_recipients: [age1a, age1b]\nretry_timeout: 10s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
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
	if err := os.WriteFile(typo, []byte("repoo: file:///x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
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
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
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
		{func(c *Config) { c.Compression = "gzip" }, "compression"},
		{func(c *Config) { c.PushConcurrency = 0 }, "push_concurrency"},
		{func(c *Config) { c.LogFormat = "xml" }, "log_format"},
		{func(c *Config) { c.BackupSchedule = "0 25 * * *" }, "backup_schedule"},
		{func(c *Config) { c.DumpSchedule = "0 0 30 2 *" }, "never due"},
		{func(c *Config) { c.DaemonRetryBackoff = 0 }, "daemon_retry_backoff"},
		{func(c *Config) { c.MetricsAddr = "9187" }, "metrics_addr"},
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

func TestParseSchedule(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	from := time.Date(2026, 11, 22, 14, 3, 7, 0, loc)
	for _, tc := range []struct {
		spec string
		want time.Time // zero: disabled
	}{
		{"0 2 * * *", time.Date(2026, 11, 23, 2, 0, 0, 0, loc)},
		{"30 2 * * *", time.Date(2026, 11, 23, 2, 30, 0, 0, loc)},
		{"@daily", time.Date(2026, 11, 23, 0, 0, 0, 0, loc)},
		{"@hourly", time.Date(2026, 11, 22, 15, 0, 0, 0, loc)},
		{"*/5 * * * * *", time.Date(2026, 11, 22, 14, 3, 10, 0, loc)},
		{"*/15 * * * *", time.Date(2026, 11, 22, 14, 15, 0, 0, loc)},
		{"@every 90s", from.Add(90 * time.Second)},
		{"CRON_TZ=UTC 0 2 * * 1", time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)},
		{"", time.Time{}},
		{"  ", time.Time{}},
	} {
		s, err := ParseSchedule(tc.spec)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", tc.spec, err)
			continue
		}
		if tc.want.IsZero() {
			if s != nil {
				t.Errorf("ParseSchedule(%q) is not disabled", tc.spec)
			}
			continue
		}
		if got := s.Next(from); !got.Equal(tc.want) {
			t.Errorf("ParseSchedule(%q).Next(%s) = %s, want %s", tc.spec, from, got, tc.want)
		}
	}
	for _, bad := range []string{"0 2 * *", "61 * * * *", "@fortnightly", "0 0 30 2 *", "* * * * * * *"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
}

// TestLoadFileErrors: a bad file gives one line naming the file, the line
// and the setting, never a Go type.
func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "repo: file:///x\nzstd_level: 2\nretention_days: 7\n", `line 3: unknown setting "retention_days" (see 'pitr config --doc')`},
		{"not a number", "repo: file:///x\n\n\n\ns3_concurrency: four\n", `line 5: s3_concurrency: want a whole number, got "four"`},
		{"not a bool", "daemon_stream: maybe\n", `line 1: daemon_stream: want true or false, got "maybe"`},
		{"not a duration", "retry_timeout: 10\n", `line 1: retry_timeout: want a duration like 30s or 5m, got "10"`},
		{"list for a string", "repo:\n  - a\n  - b\n", `line 2: repo: want a string, got a list`},
		{"mapping for a list", "age_recipients:\n  a: b\n", `line 2: age_recipients: want a list of strings, got a mapping`},
		{"twice", "repo: file:///x\nrepo: file:///y\n", `line 2: repo is set twice (first on line 1)`},
		{"not settings", "- repo\n", `line 1: want settings as "key: value" lines, got a list`},
		{"syntax", "repo: [a\n", `line 1: did not find expected ',' or ']'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, lookup(nil))
			want := "config " + path + " " + tc.want
			if err == nil || err.Error() != want {
				t.Errorf("Load = %v\nwant    %s", err, want)
			}
			if err != nil && (strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "config.Config")) {
				t.Errorf("error is not one line without Go types: %q", err)
			}
		})
	}
	// Empty values keep the defaults, as before; known keys still load.
	path := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(path, []byte("# comment\nrepo: file:///x\nzstd_level:\nage_recipients: [age1a]\npg_dsn: host=/tmp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, lookup(nil))
	if err != nil || c.ZstdLevel != 1 || c.Repo != "file:///x" || len(c.AgeRecipients) != 1 || c.PGDSN.Reveal() != "host=/tmp" {
		t.Fatalf("Load = %+v, %v", c, err)
	}
}

// TestDecodeSections: sections and lists of sections, which the config
// will grow, get the same one-line errors with dotted keys.
func TestDecodeSections(t *testing.T) {
	type fileSet struct {
		Name     string   `yaml:"name"`
		Paths    []string `yaml:"paths"`
		Interval int      `yaml:"interval"`
	}
	type settings struct {
		Repo    string `yaml:"repo"`
		Offsite *struct {
			Repo string `yaml:"repo"`
		} `yaml:"offsite"`
		Files []fileSet `yaml:"files"`
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"ok", "repo: a\noffsite:\n  repo: b\nfiles:\n  - name: uploads\n    paths: [/srv]\n", ""},
		{"unknown in section", "offsite:\n  repo: b\n  bukcet: c\n", `line 3: unknown setting "offsite.bukcet" (see 'pitr config --doc')`},
		{"unknown in list", "files:\n  - name: x\n  - nmae: y\n", `line 3: unknown setting "files[1].nmae" (see 'pitr config --doc')`},
		{"bad value in list", "files:\n  - interval: soon\n", `line 2: files[0].interval: want a whole number, got "soon"`},
		{"scalar for section", "offsite: b\n", `line 1: offsite: want a section of settings, got "b"`},
		{"scalar for list", "files: x\n", `line 1: files: want a list, got "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tc.yaml), &doc); err != nil {
				t.Fatal(err)
			}
			var s settings
			err := decodeNode(doc.Content[0], reflect.ValueOf(&s).Elem(), "")
			if tc.want == "" {
				if err != nil || s.Repo != "a" || s.Offsite == nil || s.Offsite.Repo != "b" || len(s.Files) != 1 || s.Files[0].Paths[0] != "/srv" {
					t.Fatalf("decode = %+v, %v", s, err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("decode = %v, want %s", err, tc.want)
			}
		})
	}
}
