package location

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two local repositories open at once, as pitr copy's source and target,
// and stay apart.
func TestOpenTwoLocal(t *testing.T) {
	ctx := t.Context()
	base := t.TempDir()
	srcDir, dstDir := filepath.Join(base, "src"), filepath.Join(base, "dst")
	src, err := Open(ctx, "file://"+srcDir, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := Open(ctx, "file://"+dstDir, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Put(ctx, "a/x", strings.NewReader("from src")); err != nil {
		t.Fatal(err)
	}
	rc, err := src.Get(ctx, "a/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if err := dst.Put(ctx, "a/x", bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if err := src.Put(ctx, "a/y", strings.NewReader("src only")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dstDir, "a", "x")); err != nil {
		t.Errorf("target lacks the copy: %v", err)
	}
	if _, err := dst.Stat(ctx, "a/y"); err == nil {
		t.Error("a put to the source reached the target")
	}
	// A reader opens the same directory again without Create.
	again, err := Open(ctx, "file://"+srcDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Stat(ctx, "a/y"); err != nil {
		t.Errorf("reader does not see the source: %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	ctx := t.Context()
	missing := filepath.Join(t.TempDir(), "missing")
	var nr *NoRepositoryError
	if _, err := Open(ctx, "file://"+missing, Options{}); !errors.As(err, &nr) || nr.Why != missing+" does not exist" {
		t.Errorf("reader of a missing directory: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a reader created the repository")
	}
	if _, err := Open(ctx, "file:///", Options{}); !errors.As(err, &nr) || nr.Why != "the filesystem root is never one" {
		t.Errorf("reader of file:///: %v", err)
	}
	var ue *UsageError
	if _, err := Open(ctx, "file:///", Options{Create: true}); !errors.As(err, &ue) || ue.Msg != "repo file:/// is the filesystem root; name a directory of its own" {
		t.Errorf("writer of file:///: %v", err)
	}
	if _, err := Open(ctx, "file://relative/dir", Options{Create: true}); !errors.As(err, &ue) || !strings.HasPrefix(ue.Msg, "repo: ") {
		t.Errorf("bad file URL: %v", err)
	}
	if _, err := Open(ctx, "ftp://x/y", Options{}); !errors.As(err, &ue) {
		t.Errorf("bad URL: %v", err)
	}
}
