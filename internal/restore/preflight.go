package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultPort is the port Preflight checks for a started restore without
// --port: the restored configuration is not known before unpacking, and
// PostgreSQL's default is what it most likely says.
const DefaultPort = 5432

// PreflightOptions is what the restored server will need.
type PreflightOptions struct {
	DataDir string   // as given to Run: decides the server's user
	Read    []string // files restore_command reads (the age identity, a config file)
	Exec    []string // programs restore_command runs (pitr)
	Start   bool     // the server is started right after: its port must be free
	Port    int      // with Start; 0 means DefaultPort
}

// Preflight checks, before a restore writes anything, what would otherwise
// fail later: restore_command runs as the server's user (the data
// directory's owner, as Run chooses it), and a file it cannot read fails
// wal-fetch with "permission denied" halfway into recovery. Each problem
// comes back as one line that says what to change.
func Preflight(ctx context.Context, opts PreflightOptions) error {
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return err
	}
	u, err := lookupServerUser(dataDir)
	if err != nil {
		return err
	}
	for _, p := range opts.Read {
		if err := checkAccess(ctx, u, p, wantRead); err != nil {
			return err
		}
	}
	for _, p := range opts.Exec {
		if err := checkAccess(ctx, u, p, wantExec); err != nil {
			return err
		}
	}
	if opts.Start {
		return checkPort(opts.Port)
	}
	return nil
}

// serverUser is who the restored server runs as.
type serverUser struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32 // supplementary groups
	self   bool     // that is us: no switching to try access
}

// lookupServerUser returns the user Run's chooseOwner picks, or ourselves
// when we are not root (the server then runs as us).
func lookupServerUser(dataDir string) (serverUser, error) {
	o, err := chooseOwner(dataDir)
	if err != nil {
		return serverUser{}, err
	}
	if !o.set {
		u := serverUser{uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), self: true}
		if gs, err := os.Getgroups(); err == nil {
			for _, g := range gs {
				u.groups = append(u.groups, uint32(g))
			}
		}
		u.name = userName(u.uid)
		return u, nil
	}
	u := serverUser{uid: uint32(o.uid), gid: uint32(o.gid)}
	u.name = userName(u.uid)
	if pu, err := user.LookupId(strconv.Itoa(o.uid)); err == nil {
		if ids, err := pu.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					u.groups = append(u.groups, uint32(g))
				}
			}
		}
	}
	return u, nil
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return "uid " + strconv.FormatUint(uint64(uid), 10)
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return strconv.FormatUint(uint64(gid), 10)
}

type access int

const (
	wantRead access = iota
	wantExec
)

func (a access) verb() string {
	if a == wantExec {
		return "execute"
	}
	return "read"
}

// checkAccess asks whether u can read (or execute) path. It tries for real
// as u first (so ACLs and the like count), and explains a refusal from the
// mode bits: the file's, and every directory's on the way to it.
func checkAccess(ctx context.Context, u serverUser, path string, want access) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("restore_command needs %s: %w", path, err)
	}
	allowed, tried := tryAccess(ctx, u, path, want)
	if tried && allowed {
		return nil
	}
	fix := accessFix(u, path, want)
	switch {
	case fix == "" && !tried:
		return nil // the mode bits allow it and we could not try
	case fix == "":
		fix = fmt.Sprintf("the mode bits allow it, so an ACL or a security policy denies it; check with: su -s /bin/sh %s -c 'test -%s %s'",
			u.name, map[access]string{wantRead: "r", wantExec: "x"}[want], path)
	}
	return fmt.Errorf("the server runs as %s and cannot %s %s: %s", u.name, want.verb(), path, fix)
}

// tryAccess runs test(1) as u (as ourselves: access(2)); tried is false
// when that was not possible.
func tryAccess(ctx context.Context, u serverUser, path string, want access) (allowed, tried bool) {
	mode := uint32(4) // R_OK
	flag := "-r"
	if want == wantExec {
		mode, flag = 1, "-x" // X_OK
	}
	if u.self {
		return syscall.Access(path, mode) == nil, true
	}
	test, err := exec.LookPath("test")
	if err != nil || !filepath.IsAbs(test) {
		return false, false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, test, flag, path)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}}
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, true
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false, true
	}
	return false, false // test itself could not run as u
}

// accessFix says what to change so that u can read (or execute) path,
// judged by the mode bits against u's uid, gid and groups; "" means
// nothing.
func accessFix(u serverUser, path string, want access) string {
	var blocked []string
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && !u.may(fi, 0o1) {
			blocked = append([]string{d}, blocked...)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	var fix string
	if fi, err := os.Stat(path); err == nil {
		bit := fs.FileMode(0o4)
		if want == wantExec {
			bit = 0o1
		}
		if !u.may(fi, bit) {
			fix = fileFix(u, path, fi, want)
		}
	}
	if len(blocked) == 0 {
		return fix
	}
	dirs := strings.Join(blocked, ", ")
	if fix == "" {
		return fmt.Sprintf("make %s searchable by %s (e.g. chmod o+x), or move the file", dirs, u.name)
	}
	return fmt.Sprintf("%s (and make %s searchable by %s)", fix, dirs, u.name)
}

func fileFix(u serverUser, path string, fi fs.FileInfo, want access) string {
	if want == wantExec {
		return fmt.Sprintf("chmod 0755 %s (or install pitr where %s can run it, e.g. /usr/local/bin)", path, u.name)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && st.Uid == u.uid {
		return fmt.Sprintf("chmod u+r %s", path)
	}
	if ok && u.inGroup(st.Gid) {
		return fmt.Sprintf("chmod 0640 %s", path)
	}
	return fmt.Sprintf("chgrp %s %s && chmod 0640 %s", groupName(u.gid), path, path)
}

// may reports whether the mode bits of fi give u the permission bit (0o4
// read, 0o1 execute or search), as the kernel decides without ACLs:
// owner class, else group class, else others.
func (u serverUser) may(fi fs.FileInfo, bit fs.FileMode) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	if u.uid == 0 {
		return bit != 0o1 || fi.IsDir() || fi.Mode().Perm()&0o111 != 0
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.uid:
		return perm&(bit<<6) != 0
	case u.inGroup(st.Gid):
		return perm&(bit<<3) != 0
	}
	return perm&bit != 0
}

func (u serverUser) inGroup(gid uint32) bool {
	if gid == u.gid {
		return true
	}
	for _, g := range u.groups {
		if g == gid {
			return true
		}
	}
	return false
}

// checkPort refuses a port a server already listens on, over TCP on the
// loopback addresses or on a unix socket in the usual directories:
// PostgreSQL would fail to start there only after the whole backup was
// unpacked.
func checkPort(port int) error {
	given := port != 0
	if !given {
		port = DefaultPort
	}
	busy := portBusy(port)
	switch {
	case busy == "":
		return nil
	case given:
		return fmt.Errorf("--port %d is in use (%s); pass --port with a free port for the restored server", port, busy)
	}
	return fmt.Errorf("--start: port %d, the default the restored server would most likely use, is in use (%s); pass --port with a free port", port, busy)
}

// portBusy says what holds port, or "" when it is free.
func portBusy(port int) string {
	for _, host := range []string{"127.0.0.1", "::1"} {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			continue
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return "something listens on " + addr
		}
	}
	for _, dir := range []string{"/var/run/postgresql", "/run/postgresql", "/tmp"} {
		sock := filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(port))
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			return "a server listens on " + sock
		}
	}
	return ""
}
