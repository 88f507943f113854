package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/wal/archive"
)

func testEnv(repo string) *env {
	cfg := config.Default()
	cfg.Repo, cfg.Encryption = repo, "none"
	return &env{cfg: cfg, stdout: io.Discard, stderr: io.Discard}
}

// TestReadersCreateNothing: read-only commands on a place without a
// repository say so and leave nothing behind; writers create it.
func TestReadersCreateNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "repo")
	empty := t.TempDir()
	for _, tt := range []struct{ url, dir string }{
		{"file://" + missing, missing},
		{"file:///", ""},
		{"file://" + empty, ""},
	} {
		for name, run := range map[string]func(e *env) error{
			"list":    func(e *env) error { return runList(t.Context(), e, false) },
			"show":    func(e *env) error { return runShow(t.Context(), e, "20261201T000000Z") },
			"dumps":   func(e *env) error { return runDumps(t.Context(), e, "", false) },
			"restore": func(e *env) error { return runRestore(t.Context(), e, restoreFlags{to: "latest", pgdata: t.TempDir()}) },
			"wal-fetch": func(e *env) error {
				return runWALFetch(t.Context(), e, "000000010000000000000001", filepath.Join(t.TempDir(), "x"))
			},
			"wal-history": func(e *env) error {
				return runWALFetch(t.Context(), e, "00000002.history", filepath.Join(t.TempDir(), "x"))
			},
		} {
			err := run(testEnv(tt.url))
			if !errors.Is(err, catalog.ErrNoRepository) || !strings.Contains(err.Error(), "no repository at "+tt.url) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s on %s: err = %v, want one line \"no repository at %s ...\"", name, tt.url, err, tt.url)
			}
			if strings.HasPrefix(name, "wal-") && errors.Is(err, archive.ErrNotFound) {
				t.Errorf("%s on %s: %v reads as not archived (exit 1: the server would promote)", name, tt.url, err)
			}
		}
		if tt.dir != "" {
			if _, err := os.Stat(filepath.Dir(tt.dir)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("readers created %s", filepath.Dir(tt.dir))
			}
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("readers wrote into %s: %v", empty, entries)
	}
	// The filesystem root is refused to writers as a usage error.
	if _, err := testEnv("file:///").WritableRepo(t.Context()); !errors.Is(err, errUsage) {
		t.Errorf("writer on file:///: err = %v, want a usage error", err)
	}
	if _, err := testEnv("file://" + missing).WritableRepo(t.Context()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Errorf("writer did not create %s: %v", missing, err)
	}
}
