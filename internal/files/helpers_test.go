package files

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/local"
)

func localStore(dir string) (storage.Storage, error) { return local.Open(dir) }

// rerunAsPostgres runs test again in a child process as the postgres
// user (permission errors cannot be made as root), or skips saying why.
func rerunAsPostgres(t *testing.T, test string) {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("running as root and there is no postgres user: permission errors cannot be made here")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test's build directory is root's alone: a copy the user can run
	dir, err := os.MkdirTemp("", "pitr-files-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "files.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "TMPDIR="+os.TempDir(), "HOME="+os.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, fs.ErrPermission) || bytes.Contains(out, []byte("permission denied")) && !bytes.Contains(out, []byte("--- ")) {
		t.Skipf("the test binary cannot run as postgres here: %v %s", err, out)
	}
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+test)) {
		t.Fatalf("as postgres: %v\n%s", err, out)
	}
	t.Logf("as postgres:\n%s", out)
}
