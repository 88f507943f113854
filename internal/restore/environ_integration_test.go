//go:build integration

package restore

import (
	"context"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

// TestStartEnvironment: restore_command, run by a server Start launched as
// root, sees the data directory owner's HOME, USER and LOGNAME, not root's,
// and no PGPASSWORD, even though StartOptions.Env repeats our environment
// as restore --start passes it.
func TestStartEnvironment(t *testing.T) {
	testenv.RequirePostgres(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: Start switches to the data directory's owner")
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", "/root")
	t.Setenv("USER", "root")
	t.Setenv("LOGNAME", "root")
	t.Setenv("PGPASSWORD", "Sup3rS3cret")
	f := newPITRFixture(t)
	dataDir := f.restoreTo(t, Target{Kind: Immediate}, "promote")
	out := filepath.Join(testenv.Dir(t), "env.txt")
	cmd := "env > " + out + "; cp " + f.archive + "/%f %p"
	if err := WriteRecoveryConfig(dataDir, []Setting{{"restore_command", cmd}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := startWith(t, dataDir, os.Environ()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(strings.TrimSpace(string(b)), "\n")
	for name, want := range map[string]string{"HOME": pg.HomeDir, "USER": pg.Username, "LOGNAME": pg.Username} {
		var got []string
		for _, kv := range env {
			if n, v, _ := strings.Cut(kv, "="); n == name {
				got = append(got, v)
			}
		}
		if !slices.Equal(got, []string{want}) {
			t.Errorf("restore_command's %s = %q, want %q", name, got, want)
		}
	}
	if strings.Contains(string(b), "Sup3rS3cret") {
		t.Errorf("restore_command's environment holds PGPASSWORD")
	}
}

// startWith is start with StartOptions.Env.
func startWith(t *testing.T, dataDir string, env []string) (Reached, *scratch.Cluster, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := scratch.Open(scratch.Options{Port: port, Dir: testenv.Dir(t)}, dataDir)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop restored server: %v", err)
		}
	})
	r, err := Start(t.Context(), StartOptions{DataDir: dataDir, Port: port, SocketDir: testenv.Dir(t), Timeout: 2 * time.Minute, Env: env})
	return r, c, err
}
