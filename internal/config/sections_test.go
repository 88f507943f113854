package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const fullFile = `repo: s3://main/pitr
s3_endpoint: http://127.0.0.1:9000
encryption: age
age_recipients: [age1a]
files_schedule: "15 4 * * *"

offsite:
  repo: s3://away/pitr
  s3_endpoint: https://s3.eu-central-1.amazonaws.com
  s3_force_path_style: false
  s3_region: eu-central-1
  s3_sse: aws:kms
  s3_sse_kms_key_id: alias/pitr
  s3_storage_class: GLACIER_IR
  s3_no_conditional_writes: true

files:
  - name: uploads
    paths: [/srv/app/uploads, /srv/app/media]
    exclude: ["*.tmp", "cache/*"]
  - name: tls
    kind: secrets
    paths: [/etc/ssl/private]
    schedule: "@hourly"

retention:
  backups:
    keep_last: 3
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12
    keep_yearly: 2
    keep_within: 48h
  dumps:
    keep_daily: 14
  files: {}
`

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pitr.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func boolp(b bool) *bool { return &b }

// TestLoadSections: a file with every section loads into the typed
// Config, with defaults inside sections (kind, s3_no_conditional_writes),
// and validates.
func TestLoadSections(t *testing.T) {
	c, err := Load(writeFile(t, fullFile), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	wantOffsite := &Repository{
		Repo: "s3://away/pitr", S3Endpoint: "https://s3.eu-central-1.amazonaws.com", S3ForcePathStyle: boolp(false),
		S3Region: "eu-central-1", S3SSE: "aws:kms", S3SSEKMSKeyID: "alias/pitr", S3StorageClass: "GLACIER_IR",
		S3NoConditionalWrites: boolp(true),
	}
	if !reflect.DeepEqual(c.Offsite, wantOffsite) {
		t.Errorf("offsite = %+v, want %+v", c.Offsite, wantOffsite)
	}
	wantFiles := []FileSet{
		{Name: "uploads", Kind: FilesUploads, Paths: []string{"/srv/app/uploads", "/srv/app/media"}, Exclude: []string{"*.tmp", "cache/*"}},
		{Name: "tls", Kind: FilesSecrets, Paths: []string{"/etc/ssl/private"}, Schedule: "@hourly"},
	}
	if !reflect.DeepEqual(c.Files, wantFiles) {
		t.Errorf("files = %+v, want %+v", c.Files, wantFiles)
	}
	wantRetention := Retention{
		Backups: &Policy{KeepLast: 3, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 2, KeepWithin: 48 * time.Hour},
		Dumps:   &Policy{KeepDaily: 14},
		Files:   &Policy{},
	}
	if !reflect.DeepEqual(c.Retention, wantRetention) {
		t.Errorf("retention = %+v, want %+v", c.Retention, wantRetention)
	}
	if c.FilesSchedule != "15 4 * * *" || c.Repo != "s3://main/pitr" {
		t.Errorf("scalars: files_schedule %q, repo %q", c.FilesSchedule, c.Repo)
	}
	if c.Retention.Backups.KeepsAll() || !c.Retention.Files.KeepsAll() || !(*Policy)(nil).KeepsAll() {
		t.Errorf("KeepsAll: backups %v, files %v", c.Retention.Backups.KeepsAll(), c.Retention.Files.KeepsAll())
	}

	// An offsite section with only repo gets the defaults of the rest.
	c, err = Load(writeFile(t, "repo: file:///a\noffsite:\n  repo: file:///b\n"), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Repository{Repo: "file:///b", S3NoConditionalWrites: boolp(false)}); !reflect.DeepEqual(c.Offsite, want) {
		t.Errorf("offsite = %+v, want %+v", c.Offsite, want)
	}
	// Without the sections: none.
	c, err = Load(writeFile(t, "repo: file:///a\noffsite:\nfiles: []\nretention:\n"), lookup(nil))
	if err != nil || c.Offsite != nil || len(c.Files) != 0 || c.Retention != (Retention{}) || c.Validate() != nil {
		t.Errorf("empty sections: %+v, %v", c, err)
	}
	if d := Default(); d.Offsite != nil || d.Files != nil || d.Retention != (Retention{}) || d.FilesSchedule != "0 3 * * *" {
		t.Errorf("Default() sections: %+v %+v %+v %q", d.Offsite, d.Files, d.Retention, d.FilesSchedule)
	}
}

// TestEnvWithSections: PITR_* variables still override the file's
// scalars when it has sections, and leave the sections alone.
func TestEnvWithSections(t *testing.T) {
	c, err := Load(writeFile(t, fullFile), lookup(map[string]string{
		"PITR_REPO": "file:///from/env", "PITR_FILES_SCHEDULE": "@daily", "PITR_S3_REGION": "us-west-2",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Repo != "file:///from/env" || c.FilesSchedule != "@daily" || c.S3Region != "us-west-2" {
		t.Errorf("scalars: repo %q, files_schedule %q, s3_region %q", c.Repo, c.FilesSchedule, c.S3Region)
	}
	if c.Offsite.Repo != "s3://away/pitr" || c.Offsite.S3Region != "eu-central-1" || len(c.Files) != 2 {
		t.Errorf("sections changed: %+v, %d file sets", c.Offsite, len(c.Files))
	}
	if got := c.Primary(); got.Repo != "file:///from/env" || got.S3Region != "us-west-2" || got.S3Endpoint != "http://127.0.0.1:9000" {
		t.Errorf("Primary() = %+v", got)
	}
}

// TestSectionEnvRefused: a variable named after a section or one of its
// keys is an error, not silently ignored.
func TestSectionEnvRefused(t *testing.T) {
	for env, want := range map[string]string{
		"PITR_OFFSITE":                      "PITR_OFFSITE: offsite is read from the config file only (sections have no PITR_* variables)",
		"PITR_OFFSITE_REPO":                 "PITR_OFFSITE_REPO: offsite.repo is read from the config file only (sections have no PITR_* variables)",
		"PITR_OFFSITE_S3_SSE":               "PITR_OFFSITE_S3_SSE: offsite.s3_sse is read from the config file only (sections have no PITR_* variables)",
		"PITR_FILES":                        "PITR_FILES: files is read from the config file only (sections have no PITR_* variables)",
		"PITR_RETENTION":                    "PITR_RETENTION: retention is read from the config file only (sections have no PITR_* variables)",
		"PITR_RETENTION_DUMPS":              "PITR_RETENTION_DUMPS: retention.dumps is read from the config file only (sections have no PITR_* variables)",
		"PITR_RETENTION_BACKUPS_KEEP_DAILY": "PITR_RETENTION_BACKUPS_KEEP_DAILY: retention.backups.keep_daily is read from the config file only (sections have no PITR_* variables)",
	} {
		for _, val := range []string{"7", ""} {
			_, err := Load("", lookup(map[string]string{env: val}))
			if err == nil || err.Error() != want {
				t.Errorf("%s=%q: Load = %v\nwant %s", env, val, err, want)
			}
		}
	}
}

// TestSectionEnvNamesDistinct: no name Load refuses is a scalar's.
func TestSectionEnvNamesDistinct(t *testing.T) {
	scalar := map[string]bool{}
	for _, s := range Settings() {
		scalar[s.Env] = true
	}
	n := 0
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		if isSection(typ.Field(i).Type) {
			sectionEnv(typ.Field(i).Type, typ.Field(i).Tag.Get("yaml"), func(env, key string) {
				n++
				if scalar[env] {
					t.Errorf("%s (%s) is a scalar's variable too", env, key)
				}
			})
		}
	}
	if n < 3 {
		t.Fatalf("only %d section variables", n)
	}
}

// TestValidateSections: every problem in a section is one line naming
// the dotted key.
func TestValidateSections(t *testing.T) {
	uploads := func(paths ...string) FileSet { return FileSet{Name: "uploads", Kind: FilesUploads, Paths: paths} }
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Offsite = &Repository{} }, "offsite.repo: not set; want s3://bucket/prefix or file:///absolute/path"},
		{func(c *Config) { c.Offsite = &Repository{Repo: "/mnt/away"} }, `offsite.repo "/mnt/away": want s3://bucket/prefix or file:///absolute/path`},
		{func(c *Config) { c.Offsite = &Repository{Repo: "s3://b/p", S3SSE: "kms"} }, `offsite.s3_sse "kms": want AES256 or aws:kms`},
		{func(c *Config) { c.Files = []FileSet{{Kind: FilesUploads, Paths: []string{"/srv"}}} }, "files[0].name: not set; want lower-case letters, digits, _ and -, starting with a letter or digit"},
		{func(c *Config) {
			c.Files = []FileSet{uploads("/a"), {Name: "Up", Kind: FilesUploads, Paths: []string{"/b"}}}
		}, `files[1].name "Up": want lower-case letters, digits, _ and -, starting with a letter or digit`},
		{func(c *Config) { c.Files = []FileSet{{Name: "-x", Kind: FilesUploads, Paths: []string{"/b"}}} }, `files[0].name "-x": want lower-case letters, digits, _ and -, starting with a letter or digit`},
		{func(c *Config) {
			c.Files = []FileSet{uploads("/a"), {Name: "tls", Kind: FilesSecrets, Paths: []string{"/etc/ssl"}}, uploads("/b")}
		}, `files[2].name "uploads" is used twice (first in files[0])`},
		{func(c *Config) { c.Files = []FileSet{{Name: "x", Kind: "docs", Paths: []string{"/a"}}} }, `files[0].kind "docs": want uploads or secrets`},
		{func(c *Config) { c.Files = []FileSet{{Name: "x", Paths: []string{"/a"}}} }, `files[0].kind "": want uploads or secrets`},
		{func(c *Config) {
			c.Encryption = "none"
			c.Files = []FileSet{{Name: "tls", Kind: FilesSecrets, Paths: []string{"/etc/ssl"}}}
		}, "files[0].kind secrets: refused with encryption: none (secret files are stored encrypted only)"},
		{func(c *Config) { c.Files = []FileSet{uploads()} }, "files[0].paths: not set; want a list of absolute paths"},
		{func(c *Config) {
			c.Files = []FileSet{{Name: "a", Kind: FilesUploads, Paths: []string{"/a"}}, uploads("/srv/x", "srv")}
		}, `files[1].paths: "srv" is not an absolute path`},
		{func(c *Config) { c.Files = []FileSet{uploads("")} }, `files[0].paths: "" is not an absolute path`},
		{func(c *Config) { c.Files = []FileSet{uploads("/srv/a", "/srv/a/")} }, `files[0].paths: "/srv/a/" is listed twice`},
		{func(c *Config) { f := uploads("/a"); f.Exclude = []string{"*.tmp", "[a"}; c.Files = []FileSet{f} }, `files[0].exclude: "[a" is not a glob pattern`},
		{func(c *Config) { f := uploads("/a"); f.Exclude = []string{""}; c.Files = []FileSet{f} }, `files[0].exclude: "" is not a glob pattern`},
		{func(c *Config) { f := uploads("/a"); f.Schedule = "0 25 * * *"; c.Files = []FileSet{f} }, `files[0].schedule "0 25 * * *": end of range (25) above maximum (23): 25`},
		{func(c *Config) { c.FilesSchedule = "0 0 30 2 *" }, `files_schedule "0 0 30 2 *": never due`},
		{func(c *Config) { c.Retention.Backups = &Policy{KeepLast: 1, KeepDaily: -1} }, "retention.backups.keep_daily: must be 0 or more"},
		{func(c *Config) { c.Retention.Dumps = &Policy{KeepYearly: -2} }, "retention.dumps.keep_yearly: must be 0 or more"},
		{func(c *Config) { c.Retention.Files = &Policy{KeepWithin: -time.Hour} }, "retention.files.keep_within: must be 0 or more"},
	} {
		c := Default()
		c.Repo = "file:///tmp/x"
		tc.mod(&c)
		err := c.Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("Validate() = %v\nwant         %s", err, tc.want)
		}
	}
	// The top-level repository keeps its messages.
	c := Default()
	if err := c.Validate(); err == nil || err.Error() != "no repository: set repo in the config file or PITR_REPO (s3://bucket/prefix or file:///path)" {
		t.Errorf("no repo: %v", err)
	}
	c.Repo, c.S3SSE = "s3://b/p", "kms"
	if err := c.Validate(); err == nil || err.Error() != `s3_sse "kms": want AES256 or aws:kms` {
		t.Errorf("s3_sse: %v", err)
	}
}

// TestLoadSectionFileErrors: unknown keys and wrong shapes inside the
// real sections name the dotted key and the line.
func TestLoadSectionFileErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"offsite:\n  repo: s3://b/p\n  s3_part_size_mib: 5\n", `line 3: unknown setting "offsite.s3_part_size_mib" (see 'pitr config --doc')`},
		{"files:\n  - name: a\n    paths: [/a]\n  - name: b\n    path: /b\n", `line 5: unknown setting "files[1].path" (see 'pitr config --doc')`},
		{"retention:\n  backups:\n    keep_days: 7\n", `line 3: unknown setting "retention.backups.keep_days" (see 'pitr config --doc')`},
		{"retention:\n  wal:\n    keep_last: 7\n", `line 2: unknown setting "retention.wal" (see 'pitr config --doc')`},
		{"retention:\n  backups:\n    keep_daily: seven\n", `line 3: retention.backups.keep_daily: want a whole number, got "seven"`},
		{"retention:\n  dumps:\n    keep_within: 30d\n", `line 3: retention.dumps.keep_within: want a duration like 30s or 5m, got "30d"`},
		{"retention:\n  backups: 7\n", `line 2: retention.backups: want a section of settings, got "7"`},
		{"files:\n  name: a\n", `line 2: files: want a list, got a mapping`},
		{"files:\n  - /srv\n", `line 2: files[0]: want a section of settings, got "/srv"`},
		{"files:\n  - name: a\n    paths: /srv\n", `line 3: files[0].paths: want a list of strings, got "/srv"`},
		{"offsite:\n  - repo: s3://b/p\n", `line 2: offsite: want a section of settings, got a list`},
		{"offsite:\n  repo: s3://b/p\n  repo: s3://c/p\n", `line 3: offsite.repo is set twice (first on line 2)`},
	} {
		path := writeFile(t, tc.yaml)
		_, err := Load(path, lookup(nil))
		if want := "config " + path + " " + tc.want; err == nil || err.Error() != want {
			t.Errorf("Load(%q) = %v\nwant %s", tc.yaml, err, want)
		}
	}
}

// TestPrimaryHasEveryRepositoryKey: every Repository key is a top-level
// setting of the same type, Primary copies each, and Set refuses sections.
func TestPrimaryHasEveryRepositoryKey(t *testing.T) {
	var c Config
	cv := reflect.ValueOf(&c).Elem()
	rt := reflect.TypeOf(Repository{})
	for i := 0; i < rt.NumField(); i++ {
		key := rt.Field(i).Tag.Get("yaml")
		f, ok := fieldByKey(cv, key)
		if !ok || f.Type() != rt.Field(i).Type {
			t.Fatalf("Repository.%s (%s) is not a top-level setting of type %s", rt.Field(i).Name, key, rt.Field(i).Type)
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("value of " + key)
		case reflect.Pointer:
			f.Set(reflect.ValueOf(boolp(i%2 == 0)))
		}
	}
	p := reflect.ValueOf(c.Primary())
	for i := 0; i < rt.NumField(); i++ {
		f, _ := fieldByKey(cv, rt.Field(i).Tag.Get("yaml"))
		if !reflect.DeepEqual(p.Field(i).Interface(), f.Interface()) {
			t.Errorf("Primary().%s = %v, want %v", rt.Field(i).Name, p.Field(i).Interface(), f.Interface())
		}
	}
	if err := c.Set("offsite", "s3://b/p"); err == nil || err.Error() != "offsite is a section: set it in the config file" {
		t.Errorf("Set(offsite) = %v", err)
	}
}

// TestSectionsDocumented: the doc lists each section and each of its keys
// in dotted form, each with a meaning and no variable; Settings stays
// scalars only.
func TestSectionsDocumented(t *testing.T) {
	got := map[string]Setting{}
	var keys []string
	for _, s := range Sections() {
		if s.Doc == "" || s.Env != "" {
			t.Errorf("section setting %+v: want a doc and no variable", s)
		}
		got[s.Key] = s
		keys = append(keys, s.Key)
	}
	want := []string{
		"offsite", "offsite.repo", "offsite.s3_endpoint", "offsite.s3_force_path_style", "offsite.s3_region", "offsite.s3_sse",
		"offsite.s3_sse_kms_key_id", "offsite.s3_storage_class", "offsite.s3_no_conditional_writes",
		"offsite.s3_object_lock", "offsite.s3_object_lock_days",
		"files", "files[].name", "files[].kind", "files[].paths", "files[].exclude", "files[].schedule",
		"retention",
		"retention.backups", "retention.backups.keep_last", "retention.backups.keep_daily", "retention.backups.keep_weekly",
		"retention.backups.keep_monthly", "retention.backups.keep_yearly", "retention.backups.keep_within",
		"retention.dumps", "retention.dumps.keep_last", "retention.dumps.keep_daily", "retention.dumps.keep_weekly",
		"retention.dumps.keep_monthly", "retention.dumps.keep_yearly", "retention.dumps.keep_within",
		"retention.files", "retention.files.keep_last", "retention.files.keep_daily", "retention.files.keep_weekly",
		"retention.files.keep_monthly", "retention.files.keep_yearly", "retention.files.keep_within",
		// monitor part
		"check", "check.warn_backup_age", "check.max_backup_age", "check.warn_wal_age", "check.max_wal_age",
		"check.warn_dump_age", "check.max_dump_age", "check.warn_files_age", "check.max_files_age",
		"check.warn_verify_age", "check.max_verify_age", "check.warn_drill_age", "check.max_drill_age",
		"check.warn_copy_lag", "check.max_copy_lag",
		"monitor", "monitor[].name", "monitor[].repo", "monitor[].s3_endpoint", "monitor[].s3_force_path_style", "monitor[].s3_region",
		"monitor[].s3_sse", "monitor[].s3_sse_kms_key_id", "monitor[].s3_storage_class", "monitor[].s3_no_conditional_writes",
		"drill", "drill.schedule", "drill.dir", "drill.user", "drill.checks", "drill.checks[].db", "drill.checks[].sql", "drill.checks[].min",
		// app part (issue 12)
		"apps", "apps[].name", "apps[].database", "apps[].database.cluster", "apps[].database.dumps", "apps[].database.pgdata",
		"apps[].files", "apps[].hooks", "apps[].hooks.before", "apps[].hooks.before[].name", "apps[].hooks.before[].command",
		"apps[].hooks.before[].timeout", "apps[].hooks.after", "apps[].hooks.after[].name", "apps[].hooks.after[].command",
		"apps[].hooks.after[].timeout", "apps[].versions", "apps[].schedule",
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("Sections() keys:\n%q\nwant\n%q", keys, want)
	}
	if got["files[].kind"].Default != "uploads" || got["offsite.s3_no_conditional_writes"].Default != "false" {
		t.Errorf("defaults: kind %q, s3_no_conditional_writes %q", got["files[].kind"].Default, got["offsite.s3_no_conditional_writes"].Default)
	}
	if top := Settings()[0]; top.Key != "repo" || got["offsite.repo"].Doc != top.Doc {
		t.Errorf("offsite.repo doc %q, want repo's %q", got["offsite.repo"].Doc, top.Doc)
	}
	if !strings.Contains(got["retention"].Doc, "keeps everything") {
		t.Errorf("retention doc does not say what no policy means: %q", got["retention"].Doc)
	}
	for _, s := range Settings() {
		if strings.ContainsAny(s.Key, ".[") || s.Key == "offsite" || s.Key == "files" || s.Key == "retention" {
			t.Errorf("Settings() lists section key %s", s.Key)
		}
	}
}

// TestRedactedSections: pitr config prints the sections in dotted form
// after the scalars; absent ones print nothing.
func TestRedactedSections(t *testing.T) {
	c, err := Load(writeFile(t, fullFile), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	lines := c.Redacted()
	at := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "offsite.") {
			at = i
			break
		}
	}
	if at < 0 || len(lines)-at != 38 {
		t.Fatalf("Redacted() has %d section lines from %d:\n%s", len(lines)-at, at, strings.Join(lines, "\n"))
	}
	want := `offsite.repo=s3://away/pitr
offsite.s3_endpoint=https://s3.eu-central-1.amazonaws.com
offsite.s3_force_path_style=false
offsite.s3_region=eu-central-1
offsite.s3_sse=aws:kms
offsite.s3_sse_kms_key_id=alias/pitr
offsite.s3_storage_class=GLACIER_IR
offsite.s3_no_conditional_writes=true
offsite.s3_object_lock=
offsite.s3_object_lock_days=0
files[0].name=uploads
files[0].kind=uploads
files[0].paths=/srv/app/uploads,/srv/app/media
files[0].exclude=*.tmp,cache/*
files[0].schedule=
files[1].name=tls
files[1].kind=secrets
files[1].paths=/etc/ssl/private
files[1].exclude=
files[1].schedule=@hourly
retention.backups.keep_last=3
retention.backups.keep_daily=7
retention.backups.keep_weekly=4
retention.backups.keep_monthly=12
retention.backups.keep_yearly=2
retention.backups.keep_within=48h0m0s
retention.dumps.keep_last=0
retention.dumps.keep_daily=14
retention.dumps.keep_weekly=0
retention.dumps.keep_monthly=0
retention.dumps.keep_yearly=0
retention.dumps.keep_within=0s
retention.files.keep_last=0
retention.files.keep_daily=0
retention.files.keep_weekly=0
retention.files.keep_monthly=0
retention.files.keep_yearly=0
retention.files.keep_within=0s`
	if got := strings.Join(lines[at:], "\n"); got != want {
		t.Errorf("section lines:\n%s\nwant\n%s", got, want)
	}
	if !contains(lines[:at], "files_schedule=15 4 * * *") || !contains(lines[:at], "repo=s3://main/pitr") {
		t.Errorf("scalars missing before the sections:\n%s", strings.Join(lines[:at], "\n"))
	}

	// Absent sections print nothing; a nil *bool in offsite prints (auto).
	c = Default()
	c.Repo = "file:///a"
	for _, l := range c.Redacted() {
		if strings.ContainsAny(strings.SplitN(l, "=", 2)[0], ".[") {
			t.Errorf("no sections, yet %q", l)
		}
	}
	c.Offsite = &Repository{Repo: "file:///b"}
	if got := fmt.Sprint(c.Redacted()[len(c.Redacted())-8:]); !strings.Contains(got, "offsite.s3_force_path_style=(auto)") {
		t.Errorf("offsite lines: %s", got)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
