package pgserver

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeInstall makes dir/bin hold every server tool (or all but missing)
// and returns dir/bin.
func fakeInstall(t *testing.T, dir string, missing ...string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range serverTools {
		if !strings.Contains(strings.Join(missing, " "), tool) {
			if err := os.WriteFile(filepath.Join(bin, tool), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return bin
}

func dataDirOf(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte(version+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFindBinDir: restore picked /usr/lib/postgresql/<PG_VERSION>/bin,
// the scratch clusters /usr/lib/postgresql/15/bin; both fell back to
// pg_ctl in PATH. One finder now does both, and a new cluster gets the
// newest installed major rather than 15.
func TestFindBinDir(t *testing.T) {
	root := t.TempDir()
	v9 := fakeInstall(t, filepath.Join(root, "9.6"))
	v15 := fakeInstall(t, filepath.Join(root, "15"))
	v16 := fakeInstall(t, filepath.Join(root, "16"))
	fakeInstall(t, filepath.Join(root, "17"), "initdb") // incomplete: not a candidate
	if err := os.Mkdir(filepath.Join(root, "common"), 0o755); err != nil {
		t.Fatal(err)
	}
	inPath := fakeInstall(t, filepath.Join(t.TempDir(), "path"))
	lookPath := func(name string) (string, error) { return filepath.Join(inPath, name), nil }
	noPath := func(name string) (string, error) { return "", exec.ErrNotFound }
	given := fakeInstall(t, t.TempDir())

	for _, tc := range []struct {
		name          string
		dir, dataDir  string
		root          string
		lookPath      func(string) (string, error)
		want, wantErr string
	}{
		{"given dir wins", given, dataDirOf(t, "15"), root, lookPath, given, ""},
		{"PG_VERSION's major", "", dataDirOf(t, "15"), root, lookPath, v15, ""},
		{"old PG_VERSION", "", dataDirOf(t, "9.6"), root, lookPath, v9, ""},
		{"new cluster: newest complete major", "", "", root, lookPath, v16, ""},
		{"no PG_VERSION: newest", "", t.TempDir(), root, lookPath, v16, ""},
		{"PG_VERSION not installed: PATH", "", dataDirOf(t, "14"), root, lookPath, inPath, ""},
		{"nothing under root: PATH", "", "", t.TempDir(), lookPath, inPath, ""},
		{"PG_VERSION not installed, no PATH", "", dataDirOf(t, "14"), root, noPath, "",
			"postgresql binaries not found: no " + filepath.Join(root, "14", "bin") + " for PG_VERSION 14, and no pg_ctl in PATH"},
		{"no root, no PATH", "", "", filepath.Join(root, "missing"), noPath, "",
			"postgresql binaries not found: no " + filepath.Join(root, "missing") + "/<major>/bin, and no pg_ctl in PATH"},
		{"given dir incomplete", filepath.Join(root, "17", "bin"), "", root, lookPath, "",
			"postgresql binaries not found: " + filepath.Join(root, "17", "bin") + " has no initdb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findBinDir(tc.dir, tc.dataDir, tc.root, tc.lookPath)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrNoBinaries) {
					t.Fatalf("findBinDir = %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("findBinDir = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestFindBinDirRelative(t *testing.T) {
	dir := t.TempDir()
	fakeInstall(t, dir)
	t.Chdir(dir)
	got, err := FindBinDir("bin", "")
	if err != nil || got != filepath.Join(dir, "bin") {
		t.Errorf("FindBinDir(bin) = %q, %v; want %q", got, err, filepath.Join(dir, "bin"))
	}
}
