//go:build integration

package files

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage/s3"
)

// TestRestoreMinIO: the exact round trip through the S3 backend, and a
// restore of one file reads only its pack, with ranged GETs.
func TestRestoreMinIO(t *testing.T) {
	srv := testenv.MinIO(t)
	st, err := s3.New(t.Context(), s3.Options{
		Bucket: srv.NewBucket(t), Endpoint: srv.Endpoint, Region: srv.Region, ForcePathStyle: true, MaxAttempts: 3,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	counter := &readCounter{Storage: st, gets: map[string]int{}, ranged: map[string]int{}}
	f := newFxRepo(t, counter)
	f.chunk = 64 << 10
	files := roundTripFiles()
	files = append(files, fxFile{ManifestEntry: catalog.ManifestEntry{Path: "/srv/app/media.bin", Type: catalog.TypeFile, Mode: 0o644, MtimeNS: mt1},
		Content: fxRandom(1<<20+123, 7)})
	f.snapshot("media", "20261121T020000Z", fxT0.Add(-24*3600e9), files)
	// The second snapshot adds one file: its one new chunk goes to a pack
	// of its own.
	files = roundTripFiles()
	files = append(files, fxFile{ManifestEntry: catalog.ManifestEntry{Path: "/srv/app/media.bin", Type: catalog.TypeFile, Mode: 0o644, MtimeNS: mt1},
		Content: fxRandom(1<<20+123, 7)}, fxReg("/srv/app/later.txt", 0o644, mt2, "added on the second night"))
	s := f.snapshot("media", "20261122T020000Z", fxT0, files)

	target := t.TempDir()
	stats, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Files != 9 || stats.Bytes != 10_552+1<<20+123+25 {
		t.Errorf("stats %+v", stats)
	}
	for _, e := range files {
		if e.Type != catalog.TypeFile || e.Link != "" {
			continue
		}
		got, err := os.ReadFile(filepath.Join(target, e.Path))
		if err != nil || !bytes.Equal(got, e.Content) {
			t.Errorf("%q: %d bytes, want %d: %v", e.Path, len(got), len(e.Content), err)
		}
		mode := e.Mode
		if os.Geteuid() != 0 {
			mode &^= 0o6000
		}
		checkMeta(t, filepath.Join(target, e.Path), mode, ^uint32(0), 0, e.MtimeNS)
	}
	if got, err := os.Readlink(filepath.Join(target, "srv/app/current")); err != nil || got != "../releases/20261122" {
		t.Errorf("symlink: %q, %v", got, err)
	}
	whole, ranged := counter.packs()
	if len(whole) != 0 || len(ranged) != 2 {
		t.Errorf("packs read whole %v, ranged %v; want both packs, ranged only", whole, ranged)
	}
	// One request a file (media.bin's 17 chunks lie end to end in a
	// pack), and one a pack for its header (its key).
	if n := counter.ranged[ranged[0]] + counter.ranged[ranged[len(ranged)-1]]; len(ranged) == 2 && n != 8+2 {
		t.Errorf("%d ranged GETs for 8 files with content in 2 packs (%v)", n, counter.ranged)
	}

	// One file of the second night: only the second pack is read, its
	// key already known to the Repo.
	counter.gets, counter.ranged = map[string]int{}, map[string]int{}
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: t.TempDir(), Include: []string{"/srv/app/later.txt"}}); err != nil {
		t.Fatal(err)
	}
	whole, ranged = counter.packs()
	if len(whole) != 0 || len(ranged) != 1 || counter.ranged[ranged[0]] != 1 {
		t.Errorf("one file read packs whole %v, ranged %v (%v); want one ranged GET", whole, ranged, counter.ranged)
	}
}
