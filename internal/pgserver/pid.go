package pgserver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PIDFile is what postmaster.pid says, see
// https://www.postgresql.org/docs/current/storage-file-layout.html
type PIDFile struct {
	PID    int
	Status string // line 8: "starting", "ready", "standby", "stopping"; "" before it is written
}

// ReadPIDFile reads dataDir's postmaster.pid; a missing file wraps
// fs.ErrNotExist.
func ReadPIDFile(dataDir string) (PIDFile, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return PIDFile{}, err
	}
	lines := strings.Split(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return PIDFile{}, fmt.Errorf("postmaster.pid: %q is not a pid", strings.TrimSpace(lines[0]))
	}
	f := PIDFile{PID: pid}
	if len(lines) > 7 {
		f.Status = strings.TrimSpace(lines[7])
	}
	return f, nil
}

// LivePostmaster returns the pid of dataDir's postmaster.pid when a
// postgres process with that pid runs. A stale file (the server crashed,
// the pid is gone or reused by another program) names no live server.
func LivePostmaster(dataDir string) (int, bool) {
	f, err := ReadPIDFile(dataDir)
	return f.PID, err == nil && ProcessAlive(f.PID) && IsPostgres(f.PID)
}

// ProcessAlive reports whether pid exists and is not a zombie: pg_ctl's
// postmaster is orphaned, and where PID 1 does not reap orphans a dead one
// stays a zombie.
func ProcessAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		// "pid (comm) state ...": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		return false // /proc works: pid is gone
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// IsPostgres tells a postmaster from a process that reused the pid of a
// stale postmaster.pid; without /proc it cannot tell and says yes.
func IsPostgres(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err != nil || strings.TrimSpace(string(b)) == "postgres"
}
