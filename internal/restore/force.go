package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/pgserver"
)

// What a restore may replace. Without --force every target (--pgdata and
// each tablespace directory) must be absent or empty. --force replaces only
// what a restore would have produced itself: a stopped PostgreSQL data
// directory for --pgdata, a directory holding only PG_<major>_<catversion>
// entries for a tablespace. Anything else, and anything a running server
// uses, is refused before a byte is downloaded or written: the directory
// may be a running cluster, or the user's files.

// tsTarget is one tablespace's restore directory.
type tsTarget struct {
	oid  uint32
	from string // location at backup time (what --tablespace-map names)
	dir  string // where it is restored
}

func (t tsTarget) flag() string { return "tablespace " + strconv.FormatUint(uint64(t.oid), 10) }

// tablespaceTargets maps the backup's tablespaces through --tablespace-map
// and refuses map entries that name no tablespace of the backup.
func tablespaceTargets(b *catalog.Backup, tsMap map[string]string) ([]tsTarget, error) {
	var out []tsTarget
	for _, ts := range b.Tablespaces {
		t := tsTarget{oid: ts.OID, from: ts.Location, dir: ts.Location}
		if to, ok := tsMap[ts.Location]; ok {
			t.dir = to
		}
		if !filepath.IsAbs(t.dir) {
			return nil, fmt.Errorf("tablespace %d: location %q is not absolute", ts.OID, t.dir)
		}
		t.dir = filepath.Clean(t.dir)
		out = append(out, t)
	}
	froms := make([]string, 0, len(tsMap))
	for from := range tsMap {
		froms = append(froms, from)
	}
	sort.Strings(froms)
	for _, from := range froms {
		found := false
		for _, ts := range b.Tablespaces {
			found = found || ts.Location == from
		}
		if !found {
			return nil, fmt.Errorf("--tablespace-map %s: backup %s has no tablespace there", from, b.ID)
		}
	}
	return out, nil
}

// checkTargets refuses targets that overlap each other or a running
// server's directories, and tablespace directories that are not empty and
// not safe to replace (see checkTarget for --pgdata).
func checkTargets(dataDir string, tss []tsTarget, force bool) error {
	live := liveDirs()
	pg := resolve(dataDir)
	if err := notLive("--pgdata "+dataDir, pg, live); err != nil {
		return err
	}
	real := make([]string, len(tss))
	for i, t := range tss {
		real[i] = resolve(t.dir)
		switch {
		case within(real[i], pg):
			return fmt.Errorf("%s: %s is inside --pgdata %s; map it elsewhere with --tablespace-map %s=DIR", t.flag(), t.dir, dataDir, t.from)
		case within(pg, real[i]):
			return fmt.Errorf("--pgdata %s is inside %s's directory %s; choose another --pgdata, or map the tablespace elsewhere with --tablespace-map %s=DIR", dataDir, t.flag(), t.dir, t.from)
		}
		for j := range i {
			if within(real[i], real[j]) || within(real[j], real[i]) {
				return fmt.Errorf("%s and %s would restore into overlapping directories %s and %s; map one elsewhere with --tablespace-map", tss[j].flag(), t.flag(), tss[j].dir, t.dir)
			}
		}
		if err := notLive(t.flag()+": "+t.dir, real[i], live); err != nil {
			return err
		}
		entries, err := os.ReadDir(t.dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("%s: %w", t.flag(), err)
		case len(entries) == 0:
		case !force:
			return fmt.Errorf("%s: directory %s is not empty (use --force, or --tablespace-map to move it)", t.flag(), t.dir)
		default:
			if err := replaceableTablespace(t.dir, entries); err != nil {
				return fmt.Errorf("%s: %w", t.flag(), err)
			}
		}
	}
	return nil
}

// replaceableData refuses, for --force, a non-empty --pgdata that is not a
// stopped PostgreSQL data directory.
func replaceableData(dir string) error {
	if err := notLive("--pgdata "+dir, resolve(dir), liveDirs()); err != nil {
		return err
	}
	if !isDataDir(dir) {
		return fmt.Errorf("--pgdata %s is not empty and not a PostgreSQL data directory (no PG_VERSION and global/pg_control); refusing to delete it, even with --force", dir)
	}
	if pid, ok := livePostmaster(dir); ok {
		return fmt.Errorf("--pgdata %s: a PostgreSQL server (pid %d, see its postmaster.pid) is running there; stop it first (--force replaces only a stopped cluster)", dir, pid)
	}
	return nil
}

// tablespaceEntry is what a tablespace directory holds: one directory per
// major version and catalog version, e.g. PG_15_202209061.
var tablespaceEntry = regexp.MustCompile(`^PG_[0-9]+_[0-9]+$`)

// replaceableTablespace refuses, for --force, a non-empty directory that
// is not a tablespace directory.
func replaceableTablespace(dir string, entries []os.DirEntry) error {
	if isDataDir(dir) {
		return fmt.Errorf("%s is a PostgreSQL data directory, not a tablespace directory; refusing to delete it, even with --force", dir)
	}
	for _, e := range entries {
		if !e.IsDir() || !tablespaceEntry.MatchString(e.Name()) {
			return fmt.Errorf("%s is not empty and not a tablespace directory (it holds %q; a tablespace directory holds only PG_<major>_<catversion>); refusing to delete it, even with --force", dir, e.Name())
		}
	}
	return nil
}

func isDataDir(dir string) bool {
	for _, f := range []string{"PG_VERSION", filepath.Join("global", "pg_control")} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// livePostmaster reads dir's postmaster.pid: a running postgres with that
// pid is a live server. A stale file (server crashed, pid gone or reused by
// another program) is not.
func livePostmaster(dir string) (int, bool) {
	f, err := pgserver.ReadPIDFile(dir)
	return f.PID, err == nil && postgresRunning(f.PID)
}

// postgresRunning reports whether pid is a running postgres; a variable
// for tests.
var postgresRunning = func(pid int) bool { return pgserver.ProcessAlive(pid) && pgserver.IsPostgres(pid) }

// liveDir is a directory a running server uses.
type liveDir struct {
	dir  string // symlinks resolved
	what string // for messages
}

// procDir is where liveDirs looks for processes; a variable for tests.
var procDir = "/proc"

// liveDirs finds the data directories of running PostgreSQL servers and
// their tablespaces. Every postgres process's working directory is its
// data directory (the postmaster changes into it at start and its children
// inherit it); a postmaster whose working directory cannot be read (another
// user's, without root) is found by its -D argument. Each data directory's
// pg_tblspc links name its tablespaces. Without /proc it finds nothing, and
// the postmaster.pid check is all that remains.
func liveDirs() []liveDir {
	procs, err := os.ReadDir(procDir)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []liveDir
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		base := filepath.Join(procDir, p.Name())
		comm, err := os.ReadFile(filepath.Join(base, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		dir, err := os.Readlink(filepath.Join(base, "cwd"))
		if err != nil {
			dir = dashD(filepath.Join(base, "cmdline"))
		}
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		dir = resolve(dir)
		if seen[dir] || dir == "/" || notDataDir(dir) {
			continue // e.g. "postgres --version" run from elsewhere
		}
		seen[dir] = true
		if pm, ok := livePostmaster(dir); ok {
			pid = pm // name the postmaster rather than one of its children
		}
		out = append(out, liveDir{dir: dir, what: fmt.Sprintf("the data directory of a running PostgreSQL server (pid %d)", pid)})
		links, _ := os.ReadDir(filepath.Join(dir, "pg_tblspc"))
		for _, l := range links {
			loc, err := os.Readlink(filepath.Join(dir, "pg_tblspc", l.Name()))
			if err != nil || !filepath.IsAbs(loc) {
				continue
			}
			out = append(out, liveDir{dir: resolve(loc), what: fmt.Sprintf("tablespace %s of the running PostgreSQL server at %s (pid %d)", l.Name(), dir, pid)})
		}
	}
	return out
}

// notDataDir reports whether dir is certainly not a data directory; one
// we may not read counts as one.
func notDataDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	return errors.Is(err, os.ErrNotExist)
}

// dashD returns the -D argument of a command line, or "".
func dashD(cmdline string) string {
	b, err := os.ReadFile(cmdline)
	if err != nil {
		return ""
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		switch {
		case a == "-D" && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "-D") && len(a) > 2:
			return a[2:]
		}
	}
	return ""
}

// notLive refuses a target that is, holds, or lies inside a directory a
// running server uses.
func notLive(what, real string, live []liveDir) error {
	for _, l := range live {
		switch {
		case real == l.dir:
			return fmt.Errorf("%s is %s; refusing to restore there, even with --force", what, l.what)
		case within(real, l.dir):
			return fmt.Errorf("%s is inside %s (%s); refusing to restore there, even with --force", what, l.what, l.dir)
		case within(l.dir, real):
			return fmt.Errorf("%s holds %s (%s); refusing to restore there, even with --force", what, l.what, l.dir)
		}
	}
	return nil
}

// resolve returns path absolute and clean, with symlinks resolved as far as
// it exists, so that two names of one directory compare equal.
func resolve(path string) string {
	path, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(real, rest)
		}
		if p == filepath.Dir(p) {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// within reports whether path a equals b or lies below it.
func within(a, b string) bool {
	if a == b {
		return true
	}
	if b == string(filepath.Separator) {
		return true
	}
	return strings.HasPrefix(a, b+string(filepath.Separator))
}
