//go:build integration

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestFilesRestoreFromCopy: file snapshots copied off-site (MinIO to a
// local directory) restore from the copy alone, byte for byte, with the
// source's MinIO stopped.
func TestFilesRestoreFromCopy(t *testing.T) {
	dir, keys := t.TempDir(), t.TempDir()
	m, _ := filesMinIO(t, dir, keys)
	for i := range 3 {
		writeTreeFile(t, filepath.Join(dir, "media", string(rune('a'+i))+".bin"), randomData(uint64(i), 2<<20), 0o644)
	}
	writeTreeFile(t, filepath.Join(dir, "notes", "read me.txt"), []byte("hello"), 0o600)
	writeTreeFile(t, filepath.Join(keys, ".env.production"), []byte("SECRET_KEY_BASE=copy-test-secret"), 0o400)
	for _, set := range []string{"media", "keys"} {
		if code, _, stderr := runCLI(t, "files", "backup", set); code != exitOK {
			t.Fatalf("files backup %s: exit %d: %s", set, code, stderr)
		}
	}
	copyDir := filepath.Join(t.TempDir(), "copy")
	if code, stdout, stderr := runCLI(t, "copy", "--to", "file://"+copyDir); code != exitOK {
		t.Fatalf("copy: exit %d: %s%s", code, stdout, stderr)
	}
	m.Stop(t)

	target := t.TempDir()
	for _, set := range []string{"media", "keys"} {
		code, stdout, stderr := runCLI(t, "--repo", "file://"+copyDir, "files", "restore", "--set", set, "--target", target)
		if code != exitOK {
			t.Fatalf("files restore %s from the copy: exit %d: %s%s", set, code, stdout, stderr)
		}
	}
	for _, p := range []string{filepath.Join(dir, "media", "a.bin"), filepath.Join(dir, "media", "c.bin"),
		filepath.Join(dir, "notes", "read me.txt"), filepath.Join(keys, ".env.production")} {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		restored := filepath.Join(target, p)
		got, err := os.ReadFile(restored)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s from the copy: %d bytes, %v; want %d bytes as snapshotted", restored, len(got), err, len(want))
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		rfi, err := os.Stat(restored)
		if err != nil {
			t.Fatal(err)
		}
		if rfi.Mode() != fi.Mode() {
			t.Errorf("%s: mode %v, want %v", restored, rfi.Mode(), fi.Mode())
		}
	}
}
