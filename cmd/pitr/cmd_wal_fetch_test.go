package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestRestoreCommandCaller: PostgreSQL runs restore_command through
// /bin/sh, which stays wal-fetch's parent and exits with it; the
// prefetcher must watch the process above the shell.
func TestRestoreCommandCaller(t *testing.T) {
	comm, ppid, ok := procParent(os.Getpid())
	if !ok || ppid != os.Getppid() || comm == "" {
		t.Fatalf("procParent(self) = %q, %d, %v; want our parent %d", comm, ppid, ok, os.Getppid())
	}
	if os.Getenv("PITR_TEST_CALLER") == "1" {
		os.Stdout.WriteString(strconv.Itoa(restoreCommandCaller()))
		os.Exit(0)
	}
	// This test binary, run as restore_command would run it: under
	// `sh -c` with an environment assignment, as pitr restore writes it.
	cmd := exec.Command("/bin/sh", "-c", "PITR_TEST_CALLER=1 '"+os.Args[0]+"' -test.run '^TestRestoreCommandCaller$'")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || got != os.Getpid() {
		t.Fatalf("caller = %q, want this process %d (the shell skipped)", out, os.Getpid())
	}
}
