package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/config"
)

// exampleKinds are the examples under examples/apps/, each with the
// absolute path prefixes of the application's own files: a test moves
// them under a root directory of its own (see exampleConfig).
var exampleKinds = map[string][]string{
	"mastodon": {"/home/mastodon", "/var/backups/redis", "/var/lib/postgresql"},
	"zulip":    {"/etc/zulip", "/home/zulip", "/var/lib/postgresql"},
	"django":   {"/opt/docker"},
	"caprover": {"/captain"},
	"aleph":    {"/srv/aleph"},
}

// exampleConfig returns examples/apps/<kind>/pitr.yaml with the
// application's paths moved under root and the other placeholders (the
// recipients file, a Redis port, an off-site repository...) replaced as
// subst says, old -> new. The test's environment (PITR_REPO, ...) sets the
// top-level repository settings over the file's.
func exampleConfig(t testing.TB, kind, root string, subst map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "apps", kind, "pitr.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, new := range subst {
		if !strings.Contains(s, old) {
			t.Fatalf("examples/apps/%s/pitr.yaml has no %q to replace", kind, old)
		}
		s = strings.ReplaceAll(s, old, new)
	}
	for _, p := range exampleKinds[kind] {
		s = strings.ReplaceAll(s, " "+p, " "+root+p)
		s = strings.ReplaceAll(s, "["+p, "["+root+p)
	}
	return s
}

// TestExampleConfigsValid loads each application example with the config
// loader and validates it, then checks it holds what the application's own
// backup documentation says must come back.
func TestExampleConfigsValid(t *testing.T) {
	for kind := range exampleKinds {
		t.Run(kind, func(t *testing.T) {
			root := t.TempDir()
			path := filepath.Join(root, "pitr.yaml")
			if err := os.WriteFile(path, []byte(exampleConfig(t, kind, root, nil)), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(path, func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("examples/apps/%s/pitr.yaml: %v", kind, err)
			}
			if len(c.Apps) != 1 {
				t.Fatalf("%d apps, want 1", len(c.Apps))
			}
			app := c.Apps[0]
			if app.Schedule == "" {
				t.Errorf("app %s has no schedule: pitr daemon would not back it up", app.Name)
			}
			for _, fs := range c.Files {
				for _, p := range fs.Paths {
					if !strings.HasPrefix(p, root) {
						t.Errorf("file set %s: path %s is not an application path of the kind (add its prefix to exampleKinds)", fs.Name, p)
					}
				}
			}
			checkExample(t, kind, &c, &app)
		})
	}
}

func setOf(c *config.Config, name string) *config.FileSet {
	for i := range c.Files {
		if c.Files[i].Name == name {
			return &c.Files[i]
		}
	}
	return nil
}

// checkExample checks the parts issue 12 names for each kind.
func checkExample(t *testing.T, kind string, c *config.Config, app *config.App) {
	t.Helper()
	secrets := func(suffix string) {
		t.Helper()
		for _, name := range app.Files {
			fs := setOf(c, name)
			if fs.Kind == config.FilesSecrets && slices.ContainsFunc(fs.Paths, func(p string) bool { return strings.HasSuffix(p, suffix) }) {
				return
			}
		}
		t.Errorf("no secrets set of app %s holds %s", app.Name, suffix)
	}
	excludes := func(set, pattern string) {
		t.Helper()
		if fs := setOf(c, set); fs == nil || !slices.Contains(fs.Exclude, pattern) {
			t.Errorf("file set %s does not exclude %s", set, pattern)
		}
	}
	switch kind {
	case "mastodon":
		if !app.Database.Cluster {
			t.Error("mastodon: not the protected cluster (continuous PITR)")
		}
		secrets("/.env.production")
		if len(app.Hooks.Before) != 1 || !slices.Contains(app.Hooks.Before[0].Command, "--rdb") {
			t.Errorf("mastodon: before hooks %v, want one redis-cli --rdb", app.Hooks.Before)
		}
		if !slices.ContainsFunc(app.Files, func(n string) bool {
			return slices.ContainsFunc(setOf(c, n).Paths, func(p string) bool { return strings.HasSuffix(p, "/public/system") })
		}) {
			t.Error("mastodon: public/system is in no file set of the app")
		}
	case "zulip":
		if !app.Database.Cluster {
			t.Error("zulip: not the protected cluster")
		}
		secrets("/zulip-secrets.conf")
		excludes("chat-settings", "zulip-secrets.conf")
		if app.Versions["zulip"] == nil || app.Versions["os"] == nil {
			t.Errorf("zulip: versions %v, want zulip and os", app.Versions)
		}
	case "django":
		if got := app.Database.Dumps; len(got) != 3 {
			t.Errorf("django: dumps %v, want three databases", got)
		}
		if p := c.Retention.Dumps; p == nil || p.KeepDaily != 7 || p.KeepWeekly != 4 {
			t.Errorf("django: retention.dumps %+v, want keep_daily 7, keep_weekly 4", p)
		}
		excludes("media-prod", "annuaire")
		excludes("media-staging", "annuaire")
		if c.Offsite == nil || c.Offsite.Repo == "" {
			t.Error("django: no offsite repository")
		}
	case "caprover":
		if len(app.Database.Dumps) == 0 || app.Database.Cluster {
			t.Errorf("caprover: database %+v, want per-database dumps", app.Database)
		}
	case "aleph":
		if got := app.Database.Dumps; len(got) != 2 {
			t.Errorf("aleph: dumps %v, want the app database and the entity store", got)
		}
	}
}
