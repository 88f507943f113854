//go:build integration

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/testenv"
)

// debNeedTools skips the test, or fails it with PITR_TEST_REQUIRE=1, when a
// program it runs is missing.
func debNeedTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if testenv.Require() {
				t.Fatalf("%s not found (required: PITR_TEST_REQUIRE=1)", name)
			}
			t.Skipf("%s not found (set PITR_TEST_REQUIRE=1 to fail instead)", name)
		}
	}
}

// debRepoRoot is the checkout this package's tests run in (cwd is cmd/pitr).
func debRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// debRun runs name args in dir and returns its stdout; it fails the test
// with stderr when the command fails.
func debRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// debianArch is .ci/deb.sh's GOARCH -> Debian architecture for the
// architectures CI runs on.
var debianArch = map[string]string{"amd64": "amd64", "arm64": "arm64", "386": "i386", "ppc64le": "ppc64el", "riscv64": "riscv64", "s390x": "s390x"}

// TestDebPackage builds the package with .ci/deb.sh into a temp dir and
// checks what a user gets: its name and control fields, the paths it
// installs (binary, unit, conffile, docs), and that the binary it holds
// runs and names the package's version.
func TestDebPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package")
	}
	debNeedTools(t, "bash", "git", "dpkg-deb", "dpkg")
	arch, ok := debianArch[runtime.GOARCH]
	if !ok {
		t.Skipf("no Debian architecture known here for GOARCH=%s", runtime.GOARCH)
	}
	root := debRepoRoot(t)
	out := t.TempDir()
	lines := strings.Split(strings.TrimSpace(debRun(t, root, "bash", ".ci/deb.sh", out)), "\n")
	deb := lines[len(lines)-1]
	ver := strings.TrimSpace(debRun(t, root, "bash", ".ci/deb.sh", "--print-version"))
	if want := filepath.Join(out, "pitr_"+ver+"_"+arch+".deb"); deb != want {
		t.Fatalf("deb.sh built %q, want %q", deb, want)
	}

	fields := map[string]string{}
	for _, f := range []string{"Package", "Version", "Architecture", "Depends", "Recommends", "Section"} {
		fields[f] = strings.TrimSpace(debRun(t, root, "dpkg-deb", "-f", deb, f))
	}
	for f, want := range map[string]string{"Package": "pitr", "Version": ver, "Architecture": arch, "Depends": "", "Recommends": "postgresql-client", "Section": "database"} {
		if fields[f] != want {
			t.Errorf("control field %s = %q, want %q", f, fields[f], want)
		}
	}
	if got := strings.TrimSpace(debRun(t, root, "dpkg-deb", "-I", deb, "conffiles")); got != "/etc/pitr/pitr.yaml" {
		t.Errorf("conffiles = %q, want /etc/pitr/pitr.yaml", got)
	}

	// dpkg-deb -c: "-rwxr-xr-x root/root 21475490 2026-12-01 15:40 ./usr/bin/pitr".
	listed := map[string]string{} // path -> mode and owner
	for _, line := range strings.Split(strings.TrimSpace(debRun(t, root, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", line)
		}
		listed[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
	}
	want := map[string]string{
		"/usr/bin/pitr": "-rwxr-xr-x root/root",
		"/usr/lib/systemd/system/pitr-daemon.service":    "-rw-r--r-- root/root",
		"/etc/pitr/pitr.yaml":                            "-rw-r--r-- root/root",
		"/usr/share/doc/pitr/copyright":                  "-rw-r--r-- root/root",
		"/usr/share/doc/pitr/README.md":                  "-rw-r--r-- root/root",
		"/usr/share/doc/pitr/examples/pitr.yaml":         "-rw-r--r-- root/root",
		"/usr/share/doc/pitr/examples/systemd/README.md": "-rw-r--r-- root/root",
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("docs/*.md: %v, %d files", err, len(docs))
	}
	for _, d := range docs {
		want["/usr/share/doc/pitr/docs/"+filepath.Base(d)] = "-rw-r--r-- root/root"
	}
	for p, mode := range want {
		if got, ok := listed[p]; !ok {
			t.Errorf("package lacks %s", p)
		} else if got != mode {
			t.Errorf("%s is %s, want %s", p, got, mode)
		}
	}
	for p, mode := range listed {
		if !strings.HasSuffix(mode, " root/root") {
			t.Errorf("%s is owned %s, want root/root", p, mode)
		}
	}

	inst := t.TempDir()
	debRun(t, root, "dpkg", "-x", deb, inst)
	if got := debRun(t, root, filepath.Join(inst, "usr", "bin", "pitr"), "--version"); !strings.HasPrefix(got, "pitr version "+ver) {
		t.Errorf("packaged pitr --version = %q, want it to start with %q", got, "pitr version "+ver)
	}
	unit, err := os.ReadFile(filepath.Join(inst, "usr", "lib", "systemd", "system", "pitr-daemon.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"ExecStart=/usr/bin/pitr daemon --config /etc/pitr/pitr.yaml", "User=postgres"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).Match(unit) {
			t.Errorf("pitr-daemon.service lacks the line %q", line)
		}
	}
	conf, err := os.ReadFile(filepath.Join(inst, "etc", "pitr", "pitr.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if example, err := os.ReadFile(filepath.Join(root, "examples", "pitr.yaml")); err != nil || !bytes.Equal(conf, example) {
		t.Errorf("/etc/pitr/pitr.yaml differs from examples/pitr.yaml (%v)", err)
	}

	// The maintainer scripts at least parse.
	control := t.TempDir()
	debRun(t, root, "dpkg-deb", "-e", deb, control)
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		debRun(t, root, "sh", "-n", filepath.Join(control, s))
	}
}

// TestDebVersion runs .ci/deb.sh --print-version in a scratch git
// repository: without a tag, on a tag (with a file touched), after it, on a
// pre-release tag and with uncommitted changes; dpkg must order the versions
// as the commits.
func TestDebVersion(t *testing.T) {
	debNeedTools(t, "bash", "git", "dpkg")
	script, err := os.ReadFile(filepath.Join(debRepoRoot(t), ".ci", "deb.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".ci"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".ci", "deb.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		t.Helper()
		args = append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)
		return strings.TrimSpace(debRun(t, dir, "git", args...))
	}
	version := func() string {
		t.Helper()
		return strings.TrimSpace(debRun(t, dir, "bash", ".ci/deb.sh", "--print-version"))
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "one")

	var got []string
	untagged := version()
	if !regexp.MustCompile(`^0\.0\.0~git[0-9]{14}\.` + git("rev-parse", "--short=7", "HEAD") + `$`).MatchString(untagged) {
		t.Errorf("untagged version = %q, want 0.0.0~git<YYYYMMDDHHMMSS>.<sha>", untagged)
	}
	got = append(got, untagged)
	git("tag", "v1.2.3")
	// A touched file (new mtime, same bytes) is no change.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, ".ci", "deb.sh"), later, later); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != "1.2.3" {
		t.Errorf("on tag v1.2.3: version = %q, want 1.2.3", v)
	}
	got = append(got, version())
	git("commit", "-q", "--allow-empty", "-m", "two")
	if v, want := version(), "1.2.3+1.g"+git("rev-parse", "--short", "HEAD"); v != want {
		t.Errorf("one commit after v1.2.3: version = %q, want %q", v, want)
	}
	got = append(got, version())
	git("tag", "v1.3.0-rc1")
	if v := version(); v != "1.3.0~rc1" {
		t.Errorf("on tag v1.3.0-rc1: version = %q, want 1.3.0~rc1", v)
	}
	got = append(got, version(), "1.3.0")
	for i := 1; i < len(got); i++ {
		if err := exec.Command("dpkg", "--compare-versions", got[i-1], "lt", got[i]).Run(); err != nil {
			t.Errorf("dpkg does not sort %q before %q: %v", got[i-1], got[i], err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".ci", "deb.sh"), append(script, '\n'), 0o755); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != "1.3.0~rc1+dirty" {
		t.Errorf("with a modified file: version = %q, want 1.3.0~rc1+dirty", v)
	}
	t.Setenv("PITR_VERSION", "9.9.9")
	if v := version(); v != "9.9.9" {
		t.Errorf("PITR_VERSION=9.9.9: version = %q", v)
	}
}
