package files

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// TestRestoreSmallFilesWholePack: a restore needing most of a pack of
// small files downloads the pack once instead of one ranged GET a file,
// and leaves no spool behind; restoring one of them still reads a range.
func TestRestoreSmallFilesWholePack(t *testing.T) {
	defer func(b int, n int64) { wholeMinBlobs, wholeMinBytes = b, n }(wholeMinBlobs, wholeMinBytes)
	wholeMinBlobs, wholeMinBytes = 4, 1000
	counter := &readCounter{Storage: storagetest.NewMemory(), gets: map[string]int{}, ranged: map[string]int{}}
	f := newFxRepo(t, counter)
	files := []fxFile{fxDir("/srv", 0o755, mt1), fxDir("/srv/small", 0o755, mt1)}
	for i := range 40 {
		files = append(files, fxReg(fmt.Sprintf("/srv/small/%02d.txt", i), 0o644, mt1, strings.Repeat(fmt.Sprint(i), 300+i)))
	}
	s := f.snapshot("small", "20261122T020000Z", fxT0, files)

	target := t.TempDir()
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target}); err != nil {
		t.Fatal(err)
	}
	for _, e := range files {
		if e.Type != catalog.TypeFile {
			continue
		}
		if got, err := os.ReadFile(filepath.Join(target, e.Path)); err != nil || !bytes.Equal(got, e.Content) {
			t.Fatalf("%s: %q, %v", e.Path, got, err)
		}
	}
	whole, ranged := counter.packs()
	if len(whole) != 1 || counter.gets[whole[0]] != 1 || len(ranged) != 0 {
		t.Errorf("40 small files: packs read whole %v (%v), ranged %v; want one pack, once, whole", whole, counter.gets, counter.ranged)
	}
	if left, _ := filepath.Glob(filepath.Join(target, ".pitr-restore-packs-*")); len(left) != 0 {
		t.Errorf("spool left behind: %v", left)
	}

	counter.gets, counter.ranged = map[string]int{}, map[string]int{}
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: t.TempDir(), Include: []string{"/srv/small/07.txt"}}); err != nil {
		t.Fatal(err)
	}
	if whole, ranged := counter.packs(); len(whole) != 0 || len(ranged) != 1 {
		t.Errorf("one small file: packs read whole %v, ranged %v; want one range", whole, ranged)
	}
}

// readCounter counts the reads of pack objects: whole GETs and ranged
// ones, by pack key.
type readCounter struct {
	storage.Storage
	mu     sync.Mutex
	gets   map[string]int
	ranged map[string]int
}

func (c *readCounter) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.mu.Lock()
	c.gets[key]++
	c.mu.Unlock()
	return c.Storage.Get(ctx, key)
}

func (c *readCounter) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	c.mu.Lock()
	c.ranged[key]++
	c.mu.Unlock()
	return c.Storage.GetRange(ctx, key, offset, length)
}

func (c *readCounter) packs() (whole, ranged []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.gets {
		if strings.HasPrefix(k, catalog.PacksPrefix) {
			whole = append(whole, k)
		}
	}
	for k := range c.ranged {
		ranged = append(ranged, k)
	}
	return whole, ranged
}
