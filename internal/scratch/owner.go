package scratch

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// serverUser is the user servers and tools run as when we are root.
type serverUser struct {
	uid, gid uint32
	groups   []uint32
	home     string
	ok       bool
}

var lookupServerUser = sync.OnceValue(func() serverUser {
	if os.Geteuid() != 0 {
		return serverUser{}
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return serverUser{}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return serverUser{}
	}
	su := serverUser{uid: uint32(uid), gid: uint32(gid), home: u.HomeDir, ok: true}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				su.groups = append(su.groups, uint32(g))
			}
		}
	}
	return su
})

// PostgresUser returns the uid and gid of the `postgres` system user, with
// ok true, when the process runs as root and that user exists: servers and
// tools then run as that user. Otherwise ok is false and everything runs as
// the current user.
func PostgresUser() (uid, gid int, ok bool) {
	su := lookupServerUser()
	return int(su.uid), int(su.gid), su.ok
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
	su := lookupServerUser()
	if !su.ok {
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

func canEnter(fi fs.FileInfo, su serverUser) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	mode := fi.Mode().Perm()
	if st.Uid == su.uid {
		return mode&0o100 != 0
	}
	if st.Gid == su.gid || containsUint32(su.groups, st.Gid) {
		return mode&0o010 != 0
	}
	return mode&0o001 != 0
}

func containsUint32(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
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

// asOwner sets cmd up to run as the server's user in Dir with our environment.
func (c *Cluster) asOwner(cmd *exec.Cmd) {
	cmd.Dir = c.Dir
	cmd.Env = c.environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if su := lookupServerUser(); su.ok {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: su.uid, Gid: su.gid, Groups: su.groups}
	}
}

// environ is ours without PG* variables, which would point the tools at
// another server, plus this cluster's and Options.Env.
func (c *Cluster) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		if su := lookupServerUser(); su.ok && strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	if su := lookupServerUser(); su.ok && su.home != "" {
		env = append(env, "HOME="+su.home)
	}
	env = append(env,
		"PGHOST=127.0.0.1",
		"PGPORT="+strconv.Itoa(c.Port),
		"PGUSER=postgres",
		"PGDATABASE=postgres",
		"PGDATA="+c.DataDir,
	)
	return append(env, c.opts.Env...)
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
