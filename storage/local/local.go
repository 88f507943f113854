// Package local stores objects as files under one directory.
//
// A key maps to the file of the same relative path. Put writes a temporary
// file (".tmp-*") next to the destination, fsyncs it, renames it over the
// destination and fsyncs the directory, so a crash at any step leaves either
// the old object or the new one under the key, plus at worst a stray
// temporary file that List never reports. Create does the same but links
// the synced temporary file to the destination (link(2) fails with EEXIST
// when the key exists, so two Creates of one key cannot both win), fsyncs
// the directory and removes the temporary name; a crash before the removal
// leaves a stray temporary file, never a partial object. On a filesystem
// without hard links Create falls back to checking for the key, then
// renaming: that check can race, which Create then says nothing about.
// Because keys are paths, a key
// cannot also be a directory of other keys (both "a" and "a/b"), and key
// elements may not start with ".tmp-".
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pitr-dev/pitr/storage"
)

const (
	dirPerm  = 0o750
	filePerm = 0o640
	// tmpPrefix starts the names of files being written; List skips them.
	tmpPrefix = ".tmp-"
)

var _ storage.Storage = (*Store)(nil)

// Store is a storage.Storage in a local directory.
type Store struct {
	dir string // absolute
	// owner, when set, is the repository directory's owner: root writing
	// into a repository that belongs to another user (say `pitr backup` run
	// as root next to archive_command run as postgres) hands new files and
	// directories to that user, so neither locks the other out.
	owner *[2]int
}

// Open returns the store rooted at the existing directory dir. It creates
// nothing, so readers (list, restore, wal-fetch) leave no directory behind,
// above all none owned by root where the server's user must write later. A
// missing dir gives an error wrapping fs.ErrNotExist.
func Open(dir string) (*Store, error) { return open(dir, false) }

// Create is Open that first creates dir and its parents if they are
// missing, for writers.
func Create(dir string) (*Store, error) { return open(dir, true) }

func open(dir string, create bool) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open local store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open local store %s: %w", dir, err)
	}
	if abs == string(filepath.Separator) {
		return nil, errors.New("open local store: / is the filesystem root, not a directory of its own")
	}
	if create {
		if err := os.MkdirAll(abs, dirPerm); err != nil {
			return nil, fmt.Errorf("open local store: %w", err)
		}
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open local store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open local store: %s is not a directory", abs)
	}
	st := &Store{dir: abs}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && sys.Uid != 0 {
		st.owner = &[2]int{int(sys.Uid), int(sys.Gid)}
	}
	return st, nil
}

// ParseURL returns the directory named by a "file:///abs/path" URL.
// Relative paths are rejected: a repository must not depend on the working
// directory of whoever runs pitr (archive_command runs in the data directory).
func ParseURL(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse local store url: %w", err)
	}
	switch {
	case u.Scheme != "file":
		return "", fmt.Errorf("parse local store url %q: scheme is not file", rawURL)
	case u.Host != "" && u.Host != "localhost":
		return "", fmt.Errorf("parse local store url %q: want file:///absolute/path", rawURL)
	case u.Opaque != "" || !filepath.IsAbs(u.Path):
		return "", fmt.Errorf("parse local store url %q: path is not absolute", rawURL)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("parse local store url %q: unexpected user, query or fragment", rawURL)
	}
	return filepath.Clean(u.Path), nil
}

// Dir returns the store's absolute root directory.
func (s *Store) Dir() string { return s.dir }

// check rejects keys that are invalid for every store, and keys this store
// could confuse with its temporary files.
func check(key string) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("invalid key %q", key)
	}
	for elem := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(elem, tmpPrefix) {
			return fmt.Errorf("invalid key %q: elements starting with %q are reserved", key, tmpPrefix)
		}
	}
	return nil
}

func (s *Store) path(key string) string {
	return filepath.Join(s.dir, filepath.FromSlash(key))
}

// isNotExist reports whether err says a path is absent, including when one
// of its parents is a file ("a/b" while "a" is an object).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Put writes r to a temporary file in the key's directory and renames it
// into place once it is complete and synced.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	if err := check(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if err := s.put(ctx, key, r, false); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Create is Put that links the temporary file into place, which fails
// with storage.ErrExist when the key exists.
func (s *Store) Create(ctx context.Context, key string, r io.Reader) error {
	if err := check(key); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := s.put(ctx, key, r, true); err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, create bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := s.path(key)
	dir := filepath.Dir(dst)
	f, err := s.createTemp(dir)
	if err != nil {
		return err
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			_ = f.Close() // may already be closed
			_ = os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, ctxReader{ctx: ctx, r: r}); err != nil {
		return err
	}
	if err := s.chown(tmp); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Last chance to honor a cancellation: after the rename the object is in
	// place and Put must report success.
	if err := ctx.Err(); err != nil {
		return err
	}
	if create {
		if err := createOnly(tmp, dst); err != nil {
			return err
		}
		// The object is in place under both names; the temporary one
		// goes (one left by a crash or a failed remove, List skips).
		_ = os.Remove(tmp)
	} else if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	renamed = true
	return syncDir(dir)
}

// createOnly puts the complete file tmp under dst unless dst exists.
func createOnly(tmp, dst string) error {
	err := os.Link(tmp, dst)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return storage.ErrExist
	case !noHardLinks(err):
		return err
	}
	// No hard links here (some FUSE and SMB mounts): check, then rename.
	// Another writer may slip in between the two.
	if _, err := os.Lstat(dst); err == nil {
		return storage.ErrExist
	} else if !isNotExist(err) {
		return err
	}
	return os.Rename(tmp, dst)
}

// noHardLinks reports a link(2) error that says the filesystem cannot link.
func noHardLinks(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS)
}

// createTemp creates a new temporary file in dir, creating dir and its
// parents as needed. A concurrent Delete may remove an emptied dir between
// the two steps, so it tries again a few times.
func (s *Store) createTemp(dir string) (*os.File, error) {
	var err error
	for range 5 {
		if err = s.mkdirAll(dir); err != nil {
			return nil, err
		}
		var f *os.File
		f, err = openTemp(dir)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, err
}

func openTemp(dir string) (*os.File, error) {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails
		name := filepath.Join(dir, tmpPrefix+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
}

// mkdirAll creates dir (inside the store) and its missing parents, syncing
// each parent that gained an entry so the new directories survive a crash.
func (s *Store) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	rel, err := filepath.Rel(s.dir, dir)
	if err != nil {
		return err
	}
	cur := s.dir
	for elem := range strings.SplitSeq(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, elem)
		err := os.Mkdir(cur, dirPerm)
		if errors.Is(err, fs.ErrExist) {
			continue // a file here makes the next Mkdir or the create fail
		}
		if err != nil {
			return err
		}
		if err := s.chown(cur); err != nil {
			return err
		}
		if err := syncDir(parent); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) chown(path string) error {
	if s.owner == nil {
		return nil
	}
	return os.Lchown(path, s.owner[0], s.owner[1])
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get opens the object's file.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := check(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		if isNotExist(err) {
			err = storage.ErrNotExist
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = storage.ErrNotExist // a directory of other keys
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return f, nil
}

// GetRange opens the object's file at offset, reading at most length bytes.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := storage.CheckRange(offset, length); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	f := rc.(*os.File)
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if length < 0 {
		return f, nil
	}
	return limitedFile{Reader: io.LimitReader(f, length), Closer: f}, nil
}

type limitedFile struct {
	io.Reader
	io.Closer
}

// Stat reports the object's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := check(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	fi, err := os.Stat(s.path(key))
	switch {
	case err != nil && isNotExist(err):
		err = storage.ErrNotExist
	case err == nil && !fi.Mode().IsRegular():
		err = storage.ErrNotExist
	}
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return info(key, fi), nil
}

func info(key string, fi fs.FileInfo) storage.ObjectInfo {
	return storage.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime().UTC()}
}

// Delete removes the object's file, then the directories it leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := check(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	p := s.path(key)
	fi, err := os.Lstat(p)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // not an object, only a directory of other keys
	}
	if err := os.Remove(p); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	// Best effort: a directory that is not empty (or that a concurrent Put
	// is filling) stays. Put recreates directories it finds gone.
	for dir := filepath.Dir(p); dir != s.dir && strings.HasPrefix(dir, s.dir); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List walks the smallest directory that holds every key starting with
// prefix. Within a directory, entries are visited in key order: a
// subdirectory "a" sorts as "a/", after "a.b" and "a-b" ('-' and '.' sort
// before '/'), which a plain name sort (fs.WalkDir) gets wrong.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if strings.ContainsAny(prefix, "\\\x00") {
		return nil // no valid key starts with prefix
	}
	dirKey, namePrefix := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey, namePrefix = prefix[:i], prefix[i+1:]
		if check(dirKey) != nil {
			return nil // no valid key starts with prefix
		}
	}
	dir := s.dir
	if dirKey != "" {
		dir = s.path(dirKey)
	}
	err := s.walk(ctx, dir, dirKey, namePrefix, fn)
	var fe fnError
	if errors.As(err, &fe) {
		return fe.err // the caller's own error, as it returned it
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// fnError carries an error returned by List's fn out of the walk.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

type entry struct {
	sortKey string // name, plus "/" for a directory
	name    string
	isDir   bool
}

// walk calls fn for the objects in dir (holding keys under dirKey) whose
// names start with namePrefix, recursively, in key order.
func (s *Store) walk(ctx context.Context, dir, dirKey, namePrefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil // nothing there, or a file where the prefix wants a directory
		}
		return err
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, namePrefix) || strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		switch {
		case de.IsDir():
			entries = append(entries, entry{sortKey: name + "/", name: name, isDir: true})
		case de.Type().IsRegular():
			entries = append(entries, entry{sortKey: name, name: name})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, e := range entries {
		key := e.name
		if dirKey != "" {
			key = dirKey + "/" + e.name
		}
		if !storage.ValidKey(key) {
			continue // a file no Put could have written
		}
		if e.isDir {
			if err := s.walk(ctx, filepath.Join(dir, e.name), key, "", fn); err != nil {
				return err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := os.Lstat(filepath.Join(dir, e.name))
		if err != nil {
			if isNotExist(err) {
				continue // deleted since ReadDir
			}
			return err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := fn(info(key, fi)); err != nil {
			return fnError{err}
		}
	}
	return nil
}
