package doctor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/pitr-dev/pitr/internal/crypto"
)

// owner is the user the server (and so archive_command and
// restore_command) runs as.
type owner struct {
	uid, gid uint32
	groups   []uint32
	name     string
}

func (o owner) String() string {
	if o.name != "" {
		return fmt.Sprintf("%s (uid %d)", o.name, o.uid)
	}
	return fmt.Sprintf("uid %d", o.uid)
}

// serverOwner is the data directory's owner when we are root (and the
// directory is on this host), else ourselves: doctor runs as root or as
// the server's user.
func serverOwner(dataDir string) (owner, error) {
	if os.Geteuid() != 0 {
		return userOwner(uint32(os.Getuid()), uint32(os.Getgid())), nil
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return owner{}, fmt.Errorf("the server's data directory %s is not readable here (%v): is the server on another host?", dataDir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return owner{}, errors.New("cannot tell the data directory's owner")
	}
	return userOwner(st.Uid, st.Gid), nil
}

func userOwner(uid, gid uint32) owner {
	o := owner{uid: uid, gid: gid, groups: []uint32{gid}}
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		o.name = u.Username
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					o.groups = append(o.groups, uint32(g))
				}
			}
		}
	}
	return o
}

// Permission bits, as in a mode's rwx triple.
const (
	permR = 4
	permW = 2
	permX = 1
)

// allowed reports whether o may access fi as want asks, by its mode bits
// (ACLs are not looked at).
func allowed(fi fs.FileInfo, o owner, want uint32) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || o.uid == 0 {
		return true
	}
	mode := uint32(fi.Mode().Perm())
	var bits uint32
	switch {
	case st.Uid == o.uid:
		bits = mode >> 6
	case slices.Contains(o.groups, st.Gid):
		bits = mode >> 3
	default:
		bits = mode
	}
	return bits&want == want
}

// describe is "root:root 0700" for a message.
func describe(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fi.Mode().String()
	}
	name := func(id uint32, lookup func(string) (string, error)) string {
		if n, err := lookup(strconv.FormatUint(uint64(id), 10)); err == nil {
			return n
		}
		return strconv.FormatUint(uint64(id), 10)
	}
	u := name(st.Uid, func(id string) (string, error) { x, err := user.LookupId(id); return userName(x), err })
	g := name(st.Gid, func(id string) (string, error) { x, err := user.LookupGroupId(id); return groupName(x), err })
	return fmt.Sprintf("%s:%s %04o", u, g, fi.Mode().Perm())
}

func userName(u *user.User) string {
	if u == nil {
		return ""
	}
	return u.Username
}

func groupName(g *user.Group) string {
	if g == nil {
		return ""
	}
	return g.Name
}

// reach checks that o can enter every directory above path.
func reach(path string, o owner) error {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if !allowed(fi, o, permX) {
			return fmt.Errorf("%s cannot enter %s (%s)", o, dir, describe(fi))
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// writableDir checks that o can create files in dir and in the
// directories below it down to depth (wal/<dir>/), or, when dir does not
// exist yet, in the nearest directory above it that does.
func writableDir(dir string, o owner, depth int) error {
	_, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) && filepath.Dir(dir) != dir {
		return writableDir(filepath.Dir(dir), o, 0)
	}
	if err != nil {
		return err
	}
	if err := reach(dir, o); err != nil {
		return err
	}
	var bad error
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !d.IsDir() || bad != nil {
			return nil
		}
		if rel != "." && depthOf(rel) > depth {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !allowed(fi, o, permW|permX) {
			bad = fmt.Errorf("%s cannot write %s (%s)", o, p, describe(fi))
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		return err
	}
	return bad
}

func depthOf(rel string) int {
	n := 1
	for _, c := range rel {
		if c == filepath.Separator {
			n++
		}
	}
	return n
}

func checkWritable(opts Options, srv server, connected, archived bool) Result {
	switch {
	case !connected:
		return skip(CheckWritable, "no server connection: the server's user is unknown")
	case srv.ownerUnknown != "":
		return skip(CheckWritable, srv.ownerUnknown)
	}
	o := srv.owner
	if opts.SpoolDir != "" {
		if err := writableDir(opts.SpoolDir, o, 0); err != nil {
			return fail(CheckWritable, "spool_dir: "+err.Error(), fmt.Sprintf("chown %s %s (or set spool_dir to a directory it owns)", o.name, opts.SpoolDir))
		}
	}
	if opts.LocalDir == "" {
		if archived {
			return ok(CheckWritable, "the archive check stored a segment as "+o.String())
		}
		return skip(CheckWritable, "an S3 repository is proven by the archive check, which failed")
	}
	if err := writableDir(opts.LocalDir, o, 2); err != nil {
		return fail(CheckWritable, err.Error(), fmt.Sprintf("chown -R %s %s (its directories need rwx for that user)", o.name, opts.LocalDir))
	}
	return ok(CheckWritable, fmt.Sprintf("%s can write %s", o, opts.LocalDir))
}

// checkIdentity: the identity file is set, readable by us and by the
// server's user (restore_command runs as it), and opens what is sealed to
// the recipients.
func checkIdentity(opts Options, o owner) Result {
	if !opts.Encrypted {
		return skip(CheckIdentity, "encryption: none")
	}
	const fixSet = "set age_identity_file to the key file pitr keygen wrote (kept off-site too), readable by the server's user"
	if opts.IdentityFile == "" {
		return fail(CheckIdentity, "age_identity_file is not set: a restore here could not decrypt anything", fixSet)
	}
	ids, err := crypto.LoadIdentities(opts.IdentityFile)
	if err != nil {
		return fail(CheckIdentity, err.Error(), fixSet)
	}
	fi, err := os.Stat(opts.IdentityFile)
	if err != nil {
		return fail(CheckIdentity, err.Error(), fixSet)
	}
	if o.uid != 0 {
		if err := reach(opts.IdentityFile, o); err != nil {
			return fail(CheckIdentity, err.Error(), fixSet)
		}
		if !allowed(fi, o, permR) {
			return fail(CheckIdentity, fmt.Sprintf("%s cannot read %s (%s): restore_command runs as it", o, opts.IdentityFile, describe(fi)),
				fmt.Sprintf("chown %s %s; chmod 0600 %s", o.name, opts.IdentityFile, opts.IdentityFile))
		}
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return fail(CheckIdentity, fmt.Sprintf("%s is readable by others (%s): it is the secret key", opts.IdentityFile, describe(fi)),
			"chmod 0600 "+opts.IdentityFile)
	}
	var buf bytes.Buffer
	w, err := crypto.Encrypt(&buf, opts.Recipients...)
	if err == nil {
		_, err = io.WriteString(w, "pitr doctor")
		if err == nil {
			err = w.Close()
		}
	}
	if err != nil {
		return fail(CheckIdentity, err.Error(), "set age_recipients")
	}
	r, err := crypto.Decrypt(&buf, ids...)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err != nil {
		return fail(CheckIdentity, fmt.Sprintf("%s matches none of the age recipients: what pitr stores now could not be restored with it", opts.IdentityFile),
			"set age_identity_file to the secret key of one of age_recipients")
	}
	return ok(CheckIdentity, fmt.Sprintf("%s readable by %s and it opens what is sealed to the recipients", opts.IdentityFile, o))
}
