package local

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		s, err := Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func listKeys(t *testing.T, s *Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := s.List(t.Context(), prefix, func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	// Readers create nothing: a missing directory is an error of its own.
	if _, err := Open(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing directory: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open created %s", filepath.Dir(dir))
	}
	for _, root := range []string{"/", "/.", "/tmp/.."} {
		if _, err := Open(root); err == nil {
			t.Errorf("Open(%q) accepted the filesystem root", root)
		}
		if _, err := Create(root); err == nil {
			t.Errorf("Create(%q) accepted the filesystem root", root)
		}
	}
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(dir); err != nil || s2.Dir() != dir {
		t.Fatalf("Open of the created directory: %v", err)
	}
	if s.Dir() != dir {
		t.Errorf("Dir() = %s, want %s", s.Dir(), dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		t.Fatal("Create did not create a directory")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file); err == nil {
		t.Error("Open of a file succeeded")
	}
	if _, err := Open(""); err == nil {
		t.Error("Open of an empty path succeeded")
	}
}

func TestPermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	s, err := Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "x/y/z", strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rel  string
		want fs.FileMode
	}{
		{"", 0o750}, {"x", 0o750}, {"x/y", 0o750}, {"x/y/z", 0o640},
	} {
		fi, err := os.Stat(filepath.Join(s.Dir(), tt.rel))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tt.want {
			t.Errorf("%q has mode %v, want %v", tt.rel, got, tt.want)
		}
	}
}

// TestTempFilesHidden: a crash leaves temporary files; List skips them and
// keys that could name them are refused.
func TestTempFilesHidden(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Put(ctx, "wal/a", strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "wal", ".tmp-0123"), []byte("partial"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir(), ".tmp-dir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), ".tmp-dir", "x"), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, s, ""); !slices.Equal(got, []string{"wal/a"}) {
		t.Errorf("List = %q, want only wal/a", got)
	}
	for _, key := range []string{".tmp-0123", "wal/.tmp-0123", ".tmp-dir/x"} {
		if err := s.Put(ctx, key, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) succeeded", key)
		}
		if _, err := s.Stat(ctx, key); err == nil || errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want an invalid key error", key, err)
		}
	}
	// Other dot files are ordinary keys.
	if err := s.Put(ctx, "wal/.hidden", strings.NewReader("h")); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, s, "wal/"); !slices.Equal(got, []string{"wal/.hidden", "wal/a"}) {
		t.Errorf("List(wal/) = %q", got)
	}
}

// TestFailedPutLeavesNoTemp checks the temporary file is removed.
func TestFailedPutLeavesNoTemp(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := storagetest.NewFaulty(s)
	f.FailPutAfter(1, 1000, errors.New("cut"))
	if err := f.Put(t.Context(), "d/k", bytes.NewReader(make([]byte, 5000))); err == nil {
		t.Fatal("Put succeeded")
	}
	entries, err := os.ReadDir(filepath.Join(s.Dir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("directory holds %d entries after a failed Put, first %s", len(entries), entries[0].Name())
	}
}

// TestPutOverDirectory: "a" cannot be stored once "a/b" is; the failure
// must leave "a/b" alone.
func TestPutOverDirectory(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Put(ctx, "a/b", strings.NewReader("b")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a", strings.NewReader("a")); err == nil {
		t.Error("Put over a directory succeeded")
	}
	if err := s.Put(ctx, "a/b/c", strings.NewReader("c")); err == nil {
		t.Error("Put below an object succeeded")
	}
	if got := listKeys(t, s, ""); !slices.Equal(got, []string{"a/b"}) {
		t.Errorf("List = %q, want only a/b", got)
	}
}

func TestDeleteRemovesEmptyDirs(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, k := range []string{"x/y/z", "x/w"} {
		if err := s.Put(ctx, k, strings.NewReader(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "x/y/z"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "x", "y")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("x/y still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "x")); err != nil {
		t.Errorf("x (not empty) was removed: %v", err)
	}
	if err := s.Delete(ctx, "x/w"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir()); err != nil {
		t.Errorf("the store's root was removed: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url, want string
		ok        bool
	}{
		{"file:///var/lib/pitr", "/var/lib/pitr", true},
		{"file:///var/lib/pitr/", "/var/lib/pitr", true},
		{"file://localhost/srv/repo", "/srv/repo", true},
		{"file:///with%20space", "/with space", true},
		{"file://relative/path", "", false},
		{"file:relative", "", false},
		{"file:///", "/", true},
		{"file://", "", false},
		{"s3://bucket/x", "", false},
		{"/var/lib/pitr", "", false},
		{"file:///a?x=1", "", false},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.url)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseURL(%q) = %q, %v; want %q, ok %v", tt.url, got, err, tt.want, tt.ok)
		}
	}
}

// TestCreateRaceProcesses races processes creating one key: one wins,
// the others see ErrExist.
func TestCreateRaceProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, size := range []int{10, 1 << 20, 0} {
		storagetest.RaceCreate(t, s, "TestCreateRaceChild", []string{"PITR_RACE_LOCAL_DIR=" + dir}, 6, fmt.Sprintf("race/%d", i), size)
	}
}

func TestCreateRaceChild(t *testing.T) {
	storagetest.RaceChild(t, func() (storage.Storage, error) { return Open(os.Getenv("PITR_RACE_LOCAL_DIR")) })
}
