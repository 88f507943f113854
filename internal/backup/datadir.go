package backup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// What a direct backup reads of the data directory, with the rules of
// PostgreSQL's own base backup (src/backend/backup/basebackup.c, sendDir and
// its lists), so that the tars hold what BASE_BACKUP would send.

// excludeDirContents are directories (by name, at any depth) whose contents
// the server removes or recreates at start; they are kept empty for their
// permissions.
var excludeDirContents = map[string]bool{
	"pg_stat_tmp": true, "pg_replslot": true, "pg_dynshmem": true, "pg_notify": true,
	"pg_serial": true, "pg_snapshots": true, "pg_subtrans": true,
}

// excludeFiles are files (by name, at any depth) left out; backup_label and
// tablespace_map come from pg_backup_stop's answer instead.
var excludeFiles = map[string]bool{
	"postgresql.auto.conf.tmp": true, "current_logfiles.tmp": true,
	"backup_label": true, "tablespace_map": true, "backup_manifest": true,
	"postmaster.pid": true, "postmaster.opts": true,
}

// excludePrefixes are name prefixes left out: temporary files (pgsql_tmp*)
// and the relation cache, rebuilt at start.
var excludePrefixes = []string{"pgsql_tmp", "pg_internal.init"}

// entry is one member of a tar.
type entry struct {
	name     string // in the tar, "/"-separated
	manifest string // the path in backup_manifest: relative to the data directory
	path     string // on disk; "" for content
	content  []byte // for injected files (backup_label, tablespace_map)
	mode     fs.FileMode
	size     int64
	mtime    time.Time
	link     string // symlink target
	last     bool   // read only after everything before it (pg_control)
	// fill gives the contents when the writer reaches the entry: backup_label
	// and tablespace_map, which exist only once pg_backup_stop answered.
	fill func() ([]byte, error)
	// verify: the file's pages carry data checksums to check; seg is its
	// segment number (<relfilenode>.<seg>).
	verify bool
	seg    uint32
}

func (e *entry) regular() bool { return e.mode.IsRegular() }

// excluded reports whether a directory entry named name, inside a database
// directory or not, is left out entirely; dir holds it (on disk).
func excluded(dir, name string, dbDir bool) bool {
	if excludeFiles[name] {
		return true
	}
	for _, p := range excludePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	if !dbDir {
		return false
	}
	if looksLikeTempRel(name) {
		return true
	}
	// Unlogged relations: every fork but the init fork, when the init fork
	// exists (the server recreates the others from it at start).
	if rel, fork, ok := parseRelFile(name); ok && fork != "init" {
		if _, err := os.Lstat(filepath.Join(dir, rel+"_init")); err == nil {
			return true
		}
	}
	return false
}

// parseRelFile splits a permanent relation's file name, <relfilenode>[_fork][.segment].
func parseRelFile(name string) (rel, fork string, ok bool) {
	rel, rest := leadingDigits(name)
	if rel == "" || len(rel) > 10 {
		return "", "", false
	}
	if after, found := strings.CutPrefix(rest, "_"); found {
		for _, f := range []string{"fsm", "vm", "init"} {
			if strings.HasPrefix(after, f) {
				fork, rest = f, after[len(f):]
				break
			}
		}
		if fork == "" {
			return "", "", false
		}
	}
	if after, found := strings.CutPrefix(rest, "."); found {
		seg, tail := leadingDigits(after)
		if seg == "" || tail != "" {
			return "", "", false
		}
		rest = ""
	}
	return rel, fork, rest == ""
}

// looksLikeTempRel matches t<backend>_<relfilenode>[_fork][.segment].
func looksLikeTempRel(name string) bool {
	rest, ok := strings.CutPrefix(name, "t")
	if !ok {
		return false
	}
	backend, rest := leadingDigits(rest)
	if backend == "" {
		return false
	}
	rest, ok = strings.CutPrefix(rest, "_")
	if !ok {
		return false
	}
	_, _, ok = parseRelFile(rest)
	return ok
}

func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// isDBDir reports whether dir (tar name) holds relations: base/<oid> or
// <version dir>/<oid> in a tablespace.
func isDBDir(name, versionDir string) bool {
	parent, last := "", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		parent, last = name[:i], name[i+1:]
	}
	if d, rest := leadingDigits(last); d == "" || rest != "" {
		return false
	}
	return parent == "base" || (versionDir != "" && parent == versionDir)
}

// walker lists a tree the way sendDir does.
type walker struct {
	root       string          // directory the names are relative to
	prefix     string          // manifest prefix: "" or "pg_tblspc/<oid>/"
	versionDir string          // tablespace version directory, for isDBDir
	main       bool            // the main data directory: pg_wal, pg_tblspc, pg_control rules
	skipDirs   map[string]bool // tablespaces inside the data directory (relative names)
	checksums  bool            // mark the files whose pages carry data checksums
	out        []*entry
	skipped    int // special files
}

func (w *walker) add(name string, fi fs.FileInfo, link string) error {
	e := &entry{name: name, manifest: w.prefix + name, path: filepath.Join(w.root, filepath.FromSlash(name)),
		mode: fi.Mode(), mtime: fi.ModTime(), link: link}
	if fi.Mode().IsRegular() {
		e.size = fi.Size()
		if w.checksums {
			var err error
			if e.seg, e.verify, err = checksummed(name, !w.main); err != nil {
				return err
			}
		}
	}
	w.out = append(w.out, e)
	return nil
}

// asDir is fi as a directory: a symlinked pg_wal or excluded directory is
// stored as a plain directory.
func asDir(fi fs.FileInfo) fs.FileInfo {
	if fi.Mode()&fs.ModeSymlink == 0 {
		return fi
	}
	return dirInfo{fi}
}

type dirInfo struct{ fs.FileInfo }

func (d dirInfo) Mode() fs.FileMode { return fs.ModeDir | 0o700 }

// walk lists the directory name (relative, "" for the root) recursively.
func (w *walker) walk(name string) error {
	dir := filepath.Join(w.root, filepath.FromSlash(name))
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	dbDir := isDBDir(name, w.versionDir)
	for _, n := range names {
		if excluded(dir, n, dbDir) {
			continue
		}
		rel := n
		if name != "" {
			rel = name + "/" + n
		}
		if w.main && rel == "global/pg_control" {
			continue // last, after everything else
		}
		fi, err := os.Lstat(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue // went away while we looked
		}
		if err != nil {
			return err
		}
		switch {
		case excludeDirContents[n] && (fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0):
			err = w.add(rel, asDir(fi), "")
		case w.main && rel == "pg_wal":
			_ = w.add(rel, asDir(fi), "")
			err = w.add("pg_wal/archive_status", asDir(fi), "")
		case fi.IsDir():
			_ = w.add(rel, fi, "")
			// pg_tblspc's links travel in tablespace_map instead.
			if !w.skipDirs[rel] && !(w.main && rel == "pg_tblspc") {
				err = w.walk(rel)
			}
		case fi.Mode().IsRegular():
			err = w.add(rel, fi, "")
		default:
			w.skipped++ // the server warns "skipping special file" and goes on
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readDirNames lists dir sorted, so that backups are reproducible (the
// server takes readdir's order, which no reader depends on).
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	sort.Strings(names)
	return names, nil
}

// tablespaceDir is a user tablespace found under pg_tblspc.
type tablespaceDir struct {
	OID      uint32
	Location string // the symlink's target
}

// listTablespaces reads pg_tblspc's symlinks, as pg_backup_start does.
func listTablespaces(dataDir string) ([]tablespaceDir, error) {
	names, err := readDirNames(filepath.Join(dataDir, "pg_tblspc"))
	if err != nil {
		return nil, err
	}
	var out []tablespaceDir
	for _, n := range names {
		oid, err := strconv.ParseUint(n, 10, 32)
		if err != nil || oid == 0 {
			continue // the server ignores what is not an OID
		}
		p := filepath.Join(dataDir, "pg_tblspc", n)
		target, err := os.Readlink(p)
		if err != nil {
			fi, serr := os.Lstat(p)
			if serr == nil && fi.IsDir() {
				// allow_in_place_tablespaces: a directory, not a link.
				return nil, fmt.Errorf("tablespace %s is an in-place directory, which direct backups do not handle", n)
			}
			return nil, fmt.Errorf("tablespace %s: %w", n, err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dataDir, "pg_tblspc", target)
		}
		out = append(out, tablespaceDir{OID: uint32(oid), Location: target})
	}
	return out, nil
}

// parseTablespaceMap reads tablespace_map as pg_backup_stop writes it: one
// "<oid> <path>" line per tablespace, with \ escaping \, \n and \r in paths
// (PostgreSQL 15; 13 and 14 do not escape).
func parseTablespaceMap(s string) (map[uint32]string, error) {
	out := map[uint32]string{}
	var line strings.Builder
	end := func() error {
		l := line.String()
		line.Reset()
		if l == "" {
			return nil
		}
		o, p, ok := strings.Cut(l, " ")
		oid, err := strconv.ParseUint(o, 10, 32)
		if !ok || err != nil {
			return fmt.Errorf("tablespace_map line %q", l)
		}
		out[uint32(oid)] = p
		return nil
	}
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			line.WriteByte(s[i])
		case s[i] == '\n':
			if err := end(); err != nil {
				return nil, err
			}
		default:
			line.WriteByte(s[i])
		}
	}
	if err := end(); err != nil {
		return nil, err
	}
	return out, nil
}

// controlFile is what pitr reads of global/pg_control (ControlFileData in
// src/include/catalog/pg_control.h, in the host's byte order: pitr runs on
// the host that wrote it).
type controlFile struct {
	SystemID       uint64
	ControlVersion uint32
	CatalogVersion uint32
}

// readControlFile reads the start of dataDir/global/pg_control.
func readControlFile(dataDir string) (controlFile, error) {
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return controlFile{}, err
	}
	defer f.Close()
	var b [16]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return controlFile{}, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return controlFile{
		SystemID:       binary.NativeEndian.Uint64(b[0:]),
		ControlVersion: binary.NativeEndian.Uint32(b[8:]),
		CatalogVersion: binary.NativeEndian.Uint32(b[12:]),
	}, nil
}

// versionDir is TABLESPACE_VERSION_DIRECTORY, PG_<major>_<catalog version>.
func versionDir(major int, catalog uint32) string {
	return fmt.Sprintf("PG_%d_%d", major, catalog)
}
