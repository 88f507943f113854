package scratch

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pitr-dev/pitr/internal/pgserver"
)

// serverUser is who servers and tools run as: the postgres system user
// when we are root and it exists, else ourselves (the zero Owner).
var serverUser = sync.OnceValue(func() pgserver.Owner {
	o, err := pgserver.LookupUser("postgres")
	if err != nil {
		return pgserver.Owner{}
	}
	return o
})

// PostgresUser returns the uid and gid of the `postgres` system user, with
// ok true, when the process runs as root and that user exists: servers and
// tools then run as that user. Otherwise ok is false and everything runs as
// the current user.
func PostgresUser() (uid, gid int, ok bool) {
	u, g, _, ok := serverUser().IDs()
	return int(u), int(g), ok
}

// ChownToPostgres gives path, recursively, to the postgres user when
// PostgresUser reports one; otherwise it does nothing. A data directory also
// needs mode 0700 (or 0750) before PostgreSQL starts on it.
func ChownToPostgres(path string) error {
	uid, gid, ok := PostgresUser()
	if !ok {
		return nil
	}
	err := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("chown to postgres: %w", err)
	}
	return nil
}

// checkReachable reports an error naming the first directory on the way to
// dir that the server's user may not enter: t.TempDir() and os.MkdirTemp
// make 0700 directories owned by root, which the postgres user cannot enter.
func checkReachable(dir string) error {
	su := serverUser()
	if !su.Switching() {
		return nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !canEnter(fi, su) {
			return fmt.Errorf("%s: the postgres user cannot enter %s (mode %v); use a directory it can reach", dir, p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func canEnter(fi fs.FileInfo, su pgserver.Owner) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	uid, gid, groups, _ := su.IDs()
	mode := fi.Mode().Perm()
	if st.Uid == uid {
		return mode&0o100 != 0
	}
	if st.Gid == gid || slices.Contains(groups, st.Gid) {
		return mode&0o010 != 0
	}
	return mode&0o001 != 0
}

// Command prepares a PostgreSQL tool from BinDir (or name itself if it
// contains a "/", such as a built pitr binary) to run as the server's user,
// in Dir, with PGHOST, PGPORT, PGUSER, PGDATABASE and PGDATA pointing at this
// cluster and Options.Env added. Use it to stream input or output;
// RunAsOwner covers the rest.
func (c *Cluster) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.toolPath(name), args...)
	c.asOwner(cmd)
	return cmd
}

func (c *Cluster) toolPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return filepath.Join(c.BinDir, name)
}

// asOwner sets cmd up to run as the server's user in Dir with our
// environment without PG* variables, which would point the tools at
// another server, plus this cluster's and Options.Env; HOME, USER and
// LOGNAME are the server user's (see pgserver.Owner.Environ).
func (c *Cluster) asOwner(cmd *exec.Cmd) {
	su := serverUser()
	su.Setup(cmd, c.Dir, nil)
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			base = append(base, kv)
		}
	}
	cmd.Env = su.Environ(base, append([]string{
		"PGHOST=127.0.0.1",
		"PGPORT=" + strconv.Itoa(c.Port),
		"PGUSER=postgres",
		"PGDATABASE=postgres",
		"PGDATA=" + c.DataDir,
	}, c.opts.Env...))
}

// RunAsOwner runs a tool as Command does and returns its combined output;
// the error includes the end of that output.
func (c *Cluster) RunAsOwner(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := c.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", name, err, strings.ReplaceAll(LastLines(string(out), 20), "\n", " | "))
	}
	return out, nil
}
