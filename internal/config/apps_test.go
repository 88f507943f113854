package config

import (
	"strings"
	"testing"
	"time"
)

func TestAppsSection(t *testing.T) {
	c, err := Load(writeFile(t, `repo: file:///a
files:
  - name: uploads
    paths: [/srv/app/public/system]
  - name: env
    kind: secrets
    paths: [/srv/app/.env.production]
apps:
  - name: mastodon
    database:
      cluster: true
      dumps: [mastodon]
      pgdata: /var/lib/postgresql/15/main
    files: [uploads, env]
    hooks:
      before:
        - name: redis
          command: [redis-cli, --rdb, /var/backups/redis/dump.rdb]
      after:
        - name: notify
          command: [sh, -c, "echo done"]
          timeout: 10s
    versions:
      app: [cat, /srv/app/VERSION]
      os: [cat, /etc/os-release]
    schedule: "0 2 * * *"
`), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a := c.App("mastodon")
	if a == nil || !a.Database.Cluster || len(a.Database.Dumps) != 1 || a.Database.PGData == "" || len(a.Files) != 2 ||
		len(a.Hooks.Before) != 1 || a.Hooks.Before[0].Timeout != 5*time.Minute || a.Hooks.After[0].Timeout != 10*time.Second ||
		len(a.Versions["os"]) != 2 || a.Schedule != "0 2 * * *" {
		t.Fatalf("app = %+v", a)
	}
	if c.App("other") != nil || Default().Apps != nil {
		t.Error("App(other) or Default().Apps is set")
	}
	if _, err := Load(writeFile(t, "repo: file:///a\napps:\n  - name: x\n    hook: []\n"), lookup(nil)); err == nil || !strings.Contains(err.Error(), `unknown setting "apps[0].hook"`) {
		t.Errorf("unknown key: %v", err)
	}
}

// TestValidateApps: each problem is one line naming the dotted key; all
// of an app's problems are reported.
func TestValidateApps(t *testing.T) {
	ok := func() App {
		return App{Name: "app", Database: AppDatabase{Cluster: true}, Files: []string{"uploads"},
			Hooks:    AppHooks{Before: []Hook{{Name: "h", Command: []string{"true"}, Timeout: time.Minute}}},
			Versions: map[string][]string{"os": {"cat", "/etc/os-release"}}}
	}
	for _, tc := range []struct {
		mod  func(*App)
		want string
	}{
		{func(a *App) { a.Name = "" }, "apps[0].name: not set; want lower-case letters, digits, _ and -, starting with a letter or digit"},
		{func(a *App) { a.Name = "My App" }, `apps[0].name "My App": want lower-case letters, digits, _ and -, starting with a letter or digit`},
		{func(a *App) { a.Database.Cluster, a.Files = false, nil }, "apps[0]: nothing to back up; set database.cluster, database.dumps or files"},
		{func(a *App) { a.Files = []string{"uploads", "media"} }, `apps[0].files: "media" is not a file set of files:`},
		{func(a *App) { a.Files = []string{"uploads", "uploads"} }, `apps[0].files: "uploads" is listed twice`},
		{func(a *App) { a.Database.Dumps = []string{""} }, `apps[0].database.dumps: "": want a database name of 1 to 63 bytes`},
		{func(a *App) { a.Database.Dumps = []string{"a", "a"} }, `apps[0].database.dumps: "a" is listed twice`},
		{func(a *App) { a.Database.PGData = "pgdata" }, `apps[0].database.pgdata: "pgdata" is not an absolute path`},
		{func(a *App) { a.Hooks.Before[0].Command = nil }, "apps[0].hooks.before[0].command: not set; want an argv list such as [redis-cli, --rdb, /var/backups/dump.rdb]"},
		{func(a *App) { a.Hooks.After = []Hook{{Command: []string{"x"}, Timeout: time.Second}} }, "apps[0].hooks.after[0].name: not set; want a name for the hook's logs"},
		{func(a *App) { a.Hooks.Before[0].Timeout = 0 }, "apps[0].hooks.before[0].timeout 0s: want a positive duration such as 5m"},
		{func(a *App) { a.Versions["postgresql"] = []string{"psql", "--version"} }, "apps[0].versions: postgresql is recorded by pitr itself; choose another name"},
		{func(a *App) { a.Versions["app"] = nil }, "apps[0].versions.app: no command; want an argv list such as [cat, /etc/os-release]"},
		{func(a *App) { a.Versions["App Version"] = []string{"x"} }, `apps[0].versions: name "App Version": want lower-case letters, digits, _ and -`},
		{func(a *App) { a.Schedule = "0 25 * * *" }, `apps[0].schedule "0 25 * * *": end of range (25) above maximum (23): 25`},
		{func(a *App) { a.Files = []string{"media"}; a.Hooks.Before[0].Name = "" },
			"apps[0].files: \"media\" is not a file set of files:\napps[0].hooks.before[0].name: not set; want a name for the hook's logs"},
	} {
		c := Default()
		c.Repo = "file:///tmp/x"
		c.Files = []FileSet{{Name: "uploads", Kind: FilesUploads, Paths: []string{"/srv"}}}
		a := ok()
		tc.mod(&a)
		c.Apps = []App{a}
		err := c.Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("Validate() = %v\nwant         %s", err, tc.want)
		}
	}
	c := Default()
	c.Repo = "file:///tmp/x"
	c.Files = []FileSet{{Name: "uploads", Kind: FilesUploads, Paths: []string{"/srv"}}}
	c.Apps = []App{ok(), ok()}
	if err := c.Validate(); err == nil || err.Error() != `apps[1].name "app" is used twice (first in apps[0])` {
		t.Errorf("twice: %v", err)
	}
	c.Apps = c.Apps[:1]
	if err := c.Validate(); err != nil {
		t.Errorf("valid app: %v", err)
	}
}

// pitr config prints an app's versions as name=argv, sorted.
func TestAppsRedacted(t *testing.T) {
	c := Default()
	c.Apps = []App{{Name: "a", Versions: map[string][]string{"os": {"cat", "/etc/os-release"}, "app": {"echo", "1"}}, Hooks: AppHooks{Before: []Hook{{Name: "h", Command: []string{"redis-cli", "--rdb", "/x"}, Timeout: time.Minute}}}}}
	got := strings.Join(c.Redacted(), "\n")
	for _, want := range []string{"apps[0].versions=app=echo 1;os=cat /etc/os-release", "apps[0].hooks.before[0].command=redis-cli,--rdb,/x", "apps[0].hooks.before[0].timeout=1m0s", "apps[0].database.cluster=false"} {
		if !strings.Contains(got, want) {
			t.Errorf("Redacted lacks %q:\n%s", want, got)
		}
	}
}
