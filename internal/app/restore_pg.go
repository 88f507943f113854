package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/pitr-dev/pitr/internal/pgserver"
)

// InstalledMajors lists the PostgreSQL majors a restored cluster could be
// started with here, the way restore finds its binaries
// (pgserver.FindBinDir): each pgserver.InstallRoot/<major>/bin holding the
// server tools, and the major of pg_ctl in PATH.
func InstalledMajors() []string {
	var out []string
	if entries, err := os.ReadDir(pgserver.InstallRoot); err == nil {
		for _, e := range entries {
			if _, err := pgserver.FindBinDir(filepath.Join(pgserver.InstallRoot, e.Name(), "bin"), ""); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if b, err := exec.Command(p, "--version").Output(); err == nil {
			if m := ParseVersionMajor(string(b)); m != "" && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// ParseVersionMajor returns the major of a "--version" line of a
// PostgreSQL program: "pg_ctl (PostgreSQL) 15.10 (Debian 15.10-1)" -> "15",
// "... 9.6.24" -> "9.6"; "" when it is not one.
func ParseVersionMajor(s string) string {
	m := versionRE.FindStringSubmatch(s)
	switch {
	case m == nil:
		return ""
	case len(m[1]) == 1 && m[2] != "": // before 10, majors have two parts
		return m[1] + "." + m[2]
	}
	return m[1]
}
