package pgserver

import (
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// lookupEnv returns every value name has in env.
func lookupEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if n, v, _ := strings.Cut(kv, "="); n == name {
			out = append(out, v)
		}
	}
	return out
}

// TestEnvironOwnerIdentity: restore --start passed root's HOME, USER and
// LOGNAME to the server, since StartOptions.Env (our whole environment
// again) came after the owner's and the last duplicate wins.
func TestEnvironOwnerIdentity(t *testing.T) {
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user")
	}
	uid, _ := strconv.ParseUint(pg.Uid, 10, 32)
	t.Setenv("HOME", "/root")
	t.Setenv("USER", "root")
	t.Setenv("LOGNAME", "root")
	t.Setenv("PITR_REPO", "file:///r")
	t.Setenv("PGPASSWORD", "Sup3rS3cret")
	o := Owner{cred: &syscall.Credential{Uid: uint32(uid)}, home: "/home/pg-test", name: pg.Username}
	env := o.Environ(os.Environ(), []string{"HOME=/root", "USER=root", "LOGNAME=root", "PITR_REPO=file:///r", "PITR_PG_DSN=password=x", "EXTRA=1"})
	for name, want := range map[string]string{"HOME": "/home/pg-test", "USER": pg.Username, "LOGNAME": pg.Username, "PITR_REPO": "file:///r", "EXTRA": "1"} {
		if got := lookupEnv(env, name); !slices.Equal(got, []string{want}) {
			t.Errorf("%s = %q, want just %q", name, got, want)
		}
	}
	for _, name := range []string{"PGPASSWORD", "PITR_PG_DSN"} {
		if got := lookupEnv(env, name); got != nil {
			t.Errorf("%s reaches the server: %q", name, got)
		}
	}
}

func TestMergeEnviron(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		base, extra, identity []string
		switching             bool
		want                  []string
	}{
		{"extra overrides base in place", []string{"A=1", "B=2"}, []string{"B=3", "C=4"}, nil, false, []string{"A=1", "B=3", "C=4"}},
		{"no switch keeps our identity", []string{"HOME=/root", "USER=root"}, []string{"HOME=/root"}, nil, false, []string{"HOME=/root", "USER=root"}},
		{"switch: owner's identity only", []string{"HOME=/root", "PATH=/bin"}, []string{"HOME=/root", "USER=root", "LOGNAME=root"},
			[]string{"HOME=/var/lib/postgresql", "USER=postgres", "LOGNAME=postgres"}, true,
			[]string{"PATH=/bin", "HOME=/var/lib/postgresql", "USER=postgres", "LOGNAME=postgres"}},
		{"secrets dropped", []string{"PGPASSWORD=x", "PGHOST=h"}, []string{"PITR_PG_DSN=password=y"}, nil, false, []string{"PGHOST=h"}},
	} {
		if got := mergeEnviron(tc.base, tc.extra, tc.identity, tc.switching); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestProcessAlive(t *testing.T) {
	if !ProcessAlive(os.Getpid()) {
		t.Error("we are not alive")
	}
	if ProcessAlive(1 << 30) {
		t.Error("pid 2^30 is alive")
	}
}

func TestZeroOwner(t *testing.T) {
	var o Owner
	if o.Switching() || o.Home() != "" {
		t.Errorf("zero Owner switches")
	}
	env := o.Environ([]string{"HOME=/me", "USER=me"}, []string{"X=1"})
	if !slices.Equal(env, []string{"HOME=/me", "USER=me", "X=1"}) {
		t.Errorf("Environ = %q", env)
	}
}
