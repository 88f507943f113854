package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// ErrRootOwned is OwnerOf's error for a data directory owned by root.
var ErrRootOwned = errors.New("data directory is owned by root; chown it to the postgres user")

// Owner is the user PostgreSQL runs as. The zero Owner is ourselves: no
// user switch.
type Owner struct {
	cred *syscall.Credential // nil: run as ourselves
	home string              // "" if unknown
	name string              // "" if unknown
}

// OwnerOf returns the owner of dataDir when we are root, else ourselves.
// A data directory owned by root is refused: PostgreSQL will not run as
// root.
func OwnerOf(dataDir string) (Owner, error) {
	if os.Geteuid() != 0 {
		return Owner{}, nil
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return Owner{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Owner{}, errors.New("cannot tell the data directory's owner")
	}
	if st.Uid == 0 {
		return Owner{}, ErrRootOwned
	}
	o := Owner{cred: &syscall.Credential{Uid: st.Uid, Gid: st.Gid}}
	if u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10)); err == nil {
		o.fill(u)
	}
	return o, nil
}

// LookupUser returns the system user name (its primary group and the
// groups it belongs to) when we are root, else ourselves.
func LookupUser(name string) (Owner, error) {
	if os.Geteuid() != 0 {
		return Owner{}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return Owner{}, fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return Owner{}, fmt.Errorf("look up user %s: uid %q, gid %q are not numbers", name, u.Uid, u.Gid)
	}
	o := Owner{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	o.fill(u)
	return o, nil
}

// fill adds u's name, home and groups.
func (o *Owner) fill(u *user.User) {
	o.home, o.name = u.HomeDir, u.Username
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				o.cred.Groups = append(o.cred.Groups, uint32(g))
			}
		}
	}
}

// Switching reports whether commands run as another user than ours.
func (o Owner) Switching() bool { return o.cred != nil }

// IDs returns the uid, the gid and the supplementary groups we switch to;
// ok is false when we do not switch.
func (o Owner) IDs() (uid, gid uint32, groups []uint32, ok bool) {
	if o.cred == nil {
		return 0, 0, nil, false
	}
	return o.cred.Uid, o.cred.Gid, o.cred.Groups, true
}

// Home is the owner's home directory, "" when we do not switch or do not
// know it.
func (o Owner) Home() string {
	if o.cred == nil {
		return ""
	}
	return o.home
}

// Chown gives path to the owner when we switch; otherwise it does nothing.
func (o Owner) Chown(path string) error {
	if o.cred == nil {
		return nil
	}
	return os.Lchown(path, int(o.cred.Uid), int(o.cred.Gid))
}

// Command prepares path with args to run as the owner, in dir, with
// Environ(os.Environ(), env).
func (o Owner) Command(ctx context.Context, dir string, env []string, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	o.Setup(cmd, dir, env)
	return cmd
}

// Setup makes cmd run as the owner, in dir, with Environ(os.Environ(),
// env); for commands that must not be bound to a context.
func (o Owner) Setup(cmd *exec.Cmd, dir string, env []string) {
	cmd.Dir = dir
	cmd.Env = o.Environ(os.Environ(), env)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if o.cred != nil {
		c := *o.cred
		c.Groups = append([]uint32(nil), o.cred.Groups...)
		cmd.SysProcAttr.Credential = &c
	}
}

// Environ is base, then extra, for a process of the owner: HOME, USER and
// LOGNAME are the owner's when we switch users.
func (o Owner) Environ(base, extra []string) []string {
	var identity []string
	if o.cred != nil {
		if o.home != "" {
			identity = append(identity, "HOME="+o.home)
		}
		if o.name != "" {
			identity = append(identity, "USER="+o.name, "LOGNAME="+o.name)
		}
	}
	return mergeEnviron(base, extra, identity, o.cred != nil)
}

// mergeEnviron merges environments: base, then extra, then identity, a
// later value of a name replacing an earlier one, so that each name is set
// once, where it first appeared. When switching users, HOME, USER and
// LOGNAME come from identity only: root's must not reach the server (extra
// is often our whole environment again). PGPASSWORD and PITR_PG_DSN never
// do: the server needs neither, and its environment is readable by every
// process of its user.
func mergeEnviron(base, extra, identity []string, switching bool) []string {
	var names []string
	vals := map[string]string{}
	set := func(kv string) {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := vals[name]; !ok {
			names = append(names, name)
		}
		vals[name] = kv
	}
	for _, kv := range append(append([]string{}, base...), extra...) {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "PGPASSWORD", "PITR_PG_DSN":
			continue
		case "HOME", "USER", "LOGNAME":
			if switching {
				continue
			}
		}
		set(kv)
	}
	for _, kv := range identity {
		set(kv)
	}
	env := make([]string, 0, len(names))
	for _, n := range names {
		env = append(env, vals[n])
	}
	return env
}
