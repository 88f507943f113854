package files

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRestoreExclude leaves excluded paths (and everything under an
// excluded directory) as the target holds them, also with Force, and
// restores the rest.
func TestRestoreExclude(t *testing.T) {
	f := newFxRepo(t, nil)
	s := f.snapshot("settings", "20261122T020000Z", fxT0, []fxFile{
		fxDir("/etc", 0o755, mt1),
		fxDir("/etc/app", 0o750, mt1),
		fxReg("/etc/app/settings.py", 0o640, mt1, "from the snapshot"),
		fxReg("/etc/app/secrets.conf", 0o600, mt1, "secret"),
		fxDir("/etc/app/local", 0o755, mt1),
		fxReg("/etc/app/local/a.conf", 0o644, mt1, "a"),
	})
	target := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(target, "etc/app/local"), 0o755))
	must(os.WriteFile(filepath.Join(target, "etc/app/settings.py"), []byte("mine"), 0o644))
	must(os.WriteFile(filepath.Join(target, "etc/app/local/a.conf"), []byte("my a"), 0o644))

	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target,
		Exclude: []string{"/etc/app/settings.py", "/etc/app/local"}}); err != nil {
		t.Fatalf("restore around the excluded paths: %v", err)
	}
	for name, want := range map[string]string{"etc/app/settings.py": "mine", "etc/app/local/a.conf": "my a", "etc/app/secrets.conf": "secret"} {
		if b, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(b) != want {
			t.Errorf("%s holds %q (%v), want %q", name, b, err, want)
		}
	}
	checkMeta(t, filepath.Join(target, "etc/app/secrets.conf"), 0o600, ^uint32(0), 0, mt1)

	// With Force, the rest is replaced, the excluded path still kept.
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target, Force: true,
		Exclude: []string{"/etc/app/settings.py"}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "etc/app/settings.py")); string(b) != "mine" {
		t.Errorf("settings.py replaced with Force: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "etc/app/local/a.conf")); string(b) != "a" {
		t.Errorf("a.conf not replaced with Force: %q", b)
	}
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: t.TempDir(), Exclude: []string{"/etc/["}}); err == nil {
		t.Error("a bad exclude pattern restores")
	}
}
