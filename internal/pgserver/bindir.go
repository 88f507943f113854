package pgserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoBinaries is wrapped by FindBinDir's errors; tests skip on it.
var ErrNoBinaries = errors.New("postgresql binaries not found")

// InstallRoot is where Debian and Ubuntu install each major's server:
// InstallRoot/<major>/bin.
const InstallRoot = "/usr/lib/postgresql"

// serverTools are the programs FindBinDir requires: every server package
// (Debian's postgresql-<major>, RHEL's postgresql-server) ships them together.
var serverTools = []string{"postgres", "pg_ctl", "initdb", "pg_controldata"}

// FindBinDir returns the absolute bin directory of a PostgreSQL server
// installation: dir if set; else, when dataDir's PG_VERSION names a major,
// InstallRoot/<major>/bin if installed; else, without a readable PG_VERSION
// (dataDir "" for a new cluster), the newest major under InstallRoot; else
// the directory of pg_ctl in PATH. The directory must hold postgres,
// pg_ctl, initdb and pg_controldata. Errors wrap ErrNoBinaries; callers add
// how to point them at an installation.
func FindBinDir(dir, dataDir string) (string, error) {
	return findBinDir(dir, dataDir, InstallRoot, exec.LookPath)
}

func findBinDir(dir, dataDir, root string, lookPath func(string) (string, error)) (string, error) {
	if dir != "" {
		if err := hasTools(dir); err != nil {
			return "", err
		}
		return filepath.Abs(dir)
	}
	var major string
	if dataDir != "" {
		if v, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION")); err == nil {
			major = strings.TrimSpace(string(v))
		}
	}
	var tried string
	if major != "" {
		d := filepath.Join(root, major, "bin")
		if hasTools(d) == nil {
			return filepath.Abs(d)
		}
		tried = fmt.Sprintf("no %s for PG_VERSION %s", d, major)
	} else {
		if d, ok := newestInstalled(root); ok {
			return filepath.Abs(d)
		}
		tried = fmt.Sprintf("no %s/<major>/bin", root)
	}
	p, err := lookPath("pg_ctl")
	if err != nil {
		return "", fmt.Errorf("%w: %s, and no pg_ctl in PATH", ErrNoBinaries, tried)
	}
	d := filepath.Dir(p)
	if err := hasTools(d); err != nil {
		return "", err
	}
	return filepath.Abs(d)
}

// hasTools checks that dir holds every server tool.
func hasTools(dir string) error {
	for _, tool := range serverTools {
		if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
			return fmt.Errorf("%w: %s has no %s", ErrNoBinaries, dir, tool)
		}
	}
	return nil
}

// newestInstalled returns root/<major>/bin of the highest major (Debian's
// directory names: "15", "9.6") that holds every server tool.
func newestInstalled(root string) (string, bool) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", false
	}
	type install struct {
		version []int
		dir     string
	}
	var found []install
	for _, e := range entries {
		v, ok := parseMajor(e.Name())
		d := filepath.Join(root, e.Name(), "bin")
		if ok && hasTools(d) == nil {
			found = append(found, install{v, d})
		}
	}
	if len(found) == 0 {
		return "", false
	}
	newest := slices.MaxFunc(found, func(a, b install) int { return slices.Compare(a.version, b.version) })
	return newest.dir, true
}

// parseMajor parses "15" or "9.6".
func parseMajor(s string) ([]int, bool) {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}
