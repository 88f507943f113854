package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
)

const testPassword = "Sup3rS3cret"

// printings is every way a value can reach output: fmt, JSON, YAML and
// zerolog's field kinds.
func printings(t *testing.T, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		out[verb] = fmt.Sprintf(verb, v)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out["json"] = string(js)
	ym, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out["yaml"] = string(ym)
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Interface("i", v).Msgf("%v", v)
	if s, ok := v.(fmt.Stringer); ok {
		log.Info().Stringer("s", s).Msg("")
	}
	out["zerolog"] = buf.String()
	return out
}

func TestSecretStringPrintsRedacted(t *testing.T) {
	s := NewSecretString(testPassword)
	for how, got := range printings(t, s) {
		if strings.Contains(got, testPassword) || !strings.Contains(got, "redacted") {
			t.Errorf("%s: %q", how, got)
		}
	}
	for how, got := range printings(t, struct{ Key SecretString }{s}) {
		if strings.Contains(got, testPassword) {
			t.Errorf("in a struct, %s: %q", how, got)
		}
	}
	if s.Reveal() != testPassword {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
	if got := NewSecretString("").String(); got != "" {
		t.Errorf("empty secret prints %q", got)
	}
}

func TestDSNPrintsWithoutPassword(t *testing.T) {
	for _, raw := range []string{
		"host=db user=app password=" + testPassword,
		"host=db user=app password='" + testPassword + " x'",
		"postgres://app:" + testPassword + "@db/x",
	} {
		d := NewDSN(raw)
		for how, got := range printings(t, d) {
			if strings.Contains(got, testPassword) || !strings.Contains(got, "redacted") || !strings.Contains(got, "db") {
				t.Errorf("%s of %q: %q", how, raw, got)
			}
		}
		if d.Reveal() != raw {
			t.Errorf("Reveal() = %q, want %q", d.Reveal(), raw)
		}
	}
}

// TestConfigHidesPGDSNPassword: `pitr config` printed pg_dsn in clear, and
// so did any dump of the Config.
func TestConfigHidesPGDSNPassword(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pitr.yaml")
	if err := os.WriteFile(path, []byte("repo: file:///r\npg_dsn: \"host=db user=app password='"+testPassword+" x'\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := "host=db user=app password='" + testPassword + " x'"; c.PGDSN.Reveal() != want {
		t.Fatalf("pg_dsn from the file: %q, want %q", c.PGDSN.Reveal(), want)
	}
	lines := strings.Join(c.Redacted(), "\n")
	if strings.Contains(lines, testPassword) || !strings.Contains(lines, "pg_dsn=host=db user=app password=redacted") {
		t.Errorf("Redacted():\n%s", lines)
	}
	for how, got := range printings(t, c) {
		if strings.Contains(got, testPassword) {
			t.Errorf("Config via %s shows the password", how)
		}
	}
	c, err = Load("", lookup(map[string]string{"PITR_PG_DSN": "postgres://u:" + testPassword + "@h/d"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PGDSN.Reveal() != "postgres://u:"+testPassword+"@h/d" {
		t.Fatalf("pg_dsn from the environment: %q", c.PGDSN.Reveal())
	}
	if err := c.Set("pg_dsn", "host=x"); err != nil || c.PGDSN.Reveal() != "host=x" {
		t.Fatalf("Set pg_dsn: %v, %q", err, c.PGDSN.Reveal())
	}
}

// TestChanged: what restore_command passes on round-trips through Load,
// and never holds a secret.
func TestChanged(t *testing.T) {
	c := Default()
	c.Repo = "s3://b/p"
	c.PGDSN = NewDSN("password=" + testPassword)
	f := false
	c.S3ForcePathStyle = &f
	c.AgeRecipients = []string{"age1a", "age1b"}
	c.RetryTimeout = 90 * 1e9
	got := c.Changed()
	want := map[string]string{"repo": "s3://b/p", "s3_force_path_style": "false", "age_recipients": "age1a,age1b", "retry_timeout": "1m30s"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Changed() = %v, want %v", got, want)
	}
	env := map[string]string{}
	for k, v := range got {
		env[EnvName(k)] = v
	}
	back, err := Load("", lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	back.PGDSN = c.PGDSN
	if fmt.Sprintf("%#v", back.Changed()) != fmt.Sprintf("%#v", got) || *back.S3ForcePathStyle {
		t.Fatalf("round trip: %v", back.Changed())
	}
}

// TestEveryTypePassesOn: restore_command passes settings on through
// Changed, which skips what envValue cannot print; a new setting type must
// be added there (and to setString), or be a secret. Sections have no
// variables, and wal-fetch reads none.
func TestEveryTypePassesOn(t *testing.T) {
	c := Default()
	v := reflect.ValueOf(&c).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if isSection(f.Type()) {
			continue
		}
		if f.Kind() == reflect.Pointer && f.IsNil() {
			f.Set(reflect.New(f.Type().Elem()))
		}
		switch f.Interface().(type) {
		case SecretString, DSN:
			continue
		}
		if _, ok := envValue(f); !ok {
			t.Errorf("setting %s: type %s is not passed on by Changed", v.Type().Field(i).Tag.Get("yaml"), f.Type())
		}
	}
}
