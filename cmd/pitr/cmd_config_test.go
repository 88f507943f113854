package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/storage/location"
	"github.com/pitr-dev/pitr/storage/s3"
)

// configFile points PITR_CONFIG at a file holding body.
func configFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pitr.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PITR_CONFIG", path)
	return path
}

// TestConfigPrintsSections: pitr config prints the sections in dotted
// form after the scalars, still without the password of pg_dsn; a bad
// section is a usage error naming the dotted key, after the settings.
func TestConfigPrintsSections(t *testing.T) {
	cliEnv(t, "file://"+t.TempDir())
	t.Setenv("PITR_PG_DSN", "host=db user=pitr password=hunter2")
	path := configFile(t, `offsite:
  repo: s3://away/pitr
  s3_region: eu-central-1
files:
  - name: uploads
    paths: [/a, /b]
retention:
  backups:
    keep_daily: 7
`)
	code, stdout, stderr := runCLI(t, "config")
	if code != exitOK || stderr != "" {
		t.Fatalf("config: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"# from " + path + " and PITR_* variables\n",
		"\noffsite.repo=s3://away/pitr\n", "\noffsite.s3_region=eu-central-1\n", "\noffsite.s3_force_path_style=(auto)\n",
		"\nfiles[0].name=uploads\n", "\nfiles[0].kind=uploads\n", "\nfiles[0].paths=/a,/b\n",
		"\nretention.backups.keep_daily=7\n", "\nretention.backups.keep_within=0s\n",
		"\nfiles_schedule=0 3 * * *\n", "\npg_dsn=host=db user=pitr password=redacted\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "hunter2") || strings.Contains(stdout, "retention.dumps") {
		t.Errorf("config output leaks the password, or prints an absent policy:\n%s", stdout)
	}
	if i, j := strings.Index(stdout, "zstd_level="), strings.Index(stdout, "offsite.repo="); i < 0 || j < i {
		t.Errorf("sections do not follow the scalars:\n%s", stdout)
	}

	// cliEnv has encryption: none, which refuses a secrets set.
	configFile(t, "files:\n  - name: tls\n    kind: secrets\n    paths: [/etc/ssl/private]\n")
	code, stdout, stderr = runCLI(t, "config")
	want := "files[0].kind secrets: refused with encryption: none (secret files are stored encrypted only)"
	if code != exitUsage || !strings.Contains(stderrLine(stderr), want) || !strings.Contains(stdout, "files[0].kind=secrets") {
		t.Errorf("secrets with encryption none: exit %d, stdout %q, stderr %q; want the settings, then %q", code, stdout, stderr, want)
	}
	configFile(t, "files:\n  - name: a\n    paths: [srv]\n")
	if code, _, stderr = runCLI(t, "config"); code != exitUsage || !strings.Contains(stderrLine(stderr), `files[0].paths: "srv" is not an absolute path`) {
		t.Errorf("relative path: exit %d, stderr %q", code, stderr)
	}

	// A section's variable and an unknown key in a section are usage
	// errors of one line naming it.
	configFile(t, "")
	t.Setenv("PITR_OFFSITE_REPO", "s3://away/pitr")
	code, stdout, stderr = runCLI(t, "config")
	want = "PITR_OFFSITE_REPO: offsite.repo is read from the config file only (sections have no PITR_* variables)"
	if code != exitUsage || stdout != "" || !strings.Contains(stderrLine(stderr), want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("PITR_OFFSITE_REPO: exit %d, stdout %q, stderr %q; want one line %q", code, stdout, stderr, want)
	}
	os.Unsetenv("PITR_OFFSITE_REPO")
	configFile(t, "retention:\n  backups:\n    keep_days: 7\n")
	code, _, stderr = runCLI(t, "config")
	if code != exitUsage || !strings.Contains(stderrLine(stderr), `line 3: unknown setting "retention.backups.keep_days"`) {
		t.Errorf("unknown key: exit %d, stderr %q", code, stderr)
	}
}

// TestConfigDocSections: --doc prints the scalars' table, then one row per
// section and section key, in dotted form and without a variable.
func TestConfigDocSections(t *testing.T) {
	cliEnv(t, "file://"+t.TempDir())
	code, stdout, stderr := runCLI(t, "config", "--doc")
	if code != exitOK || stderr != "" {
		t.Fatalf("config --doc: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"| `repo` | `PITR_REPO` |", "| `files_schedule` | `PITR_FILES_SCHEDULE` | 0 3 * * * |",
		"\n| setting (YAML) | default | meaning |\n|---|---|---|\n| `offsite` |  | a second repository",
		"\n| `offsite.repo` |  | repository URL", "\n| `files[].name` |  | required, unique",
		"\n| `files[].kind` | uploads | ", "\n| `files[].paths` |  | ", "\n| `files[].exclude` |  | ",
		"\n| `retention.backups.keep_daily` |  | ", "\n| `retention.files.keep_within` |  | ",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config --doc lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "PITR_OFFSITE") || strings.Contains(stdout, "PITR_FILES`") || strings.Contains(stdout, "PITR_RETENTION") {
		t.Errorf("config --doc gives a section a variable:\n%s", stdout)
	}
	for _, s := range config.Sections() {
		if !strings.Contains(stdout, "\n| `"+s.Key+"` | ") {
			t.Errorf("config --doc lacks a row for %s", s.Key)
		}
	}
}

// TestLocationOptions: the primary repository and the off-site one are
// opened from the same settings type; the transfer settings are shared.
func TestLocationOptions(t *testing.T) {
	c := config.Default()
	c.Repo, c.S3Endpoint, c.S3Region, c.S3SSE, c.S3StorageClass = "s3://main/p", "http://127.0.0.1:9000", "r1", "AES256", "STANDARD_IA"
	c.S3PartSizeMiB, c.S3Concurrency, c.StorageTimeout = 8, 2, 7*time.Second
	yes := true
	c.Offsite = &config.Repository{Repo: "s3://away/p", S3Region: "r2", S3SSE: "aws:kms", S3SSEKMSKeyID: "k", S3NoConditionalWrites: &yes}
	got := locationOptions(&c, c.Primary(), true)
	want := location.Options{Create: true, S3: s3.Options{
		Endpoint: "http://127.0.0.1:9000", Region: "r1", ForcePathStyle: true, SSE: "AES256", StorageClass: "STANDARD_IA",
		PartSize: 8 << 20, Concurrency: 2, Timeout: 7 * time.Second,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("primary: %+v\nwant     %+v", got, want)
	}
	got = locationOptions(&c, *c.Offsite, false)
	want = location.Options{S3: s3.Options{
		Region: "r2", SSE: "aws:kms", SSEKMSKeyID: "k", NoConditionalWrites: true,
		PartSize: 8 << 20, Concurrency: 2, Timeout: 7 * time.Second,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("offsite: %+v\nwant     %+v", got, want)
	}
	no := false
	c.S3ForcePathStyle = &no
	if locationOptions(&c, c.Primary(), false).S3.ForcePathStyle {
		t.Error("s3_force_path_style: false is not honoured")
	}
}
