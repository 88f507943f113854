package restore

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchTar is a data-directory-like archive: many 8 KiB files and a few
// large segments, 64 MiB in all.
func benchTar(b *testing.B) []byte {
	b.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := bytes.Repeat([]byte("pitr"), 4<<20) // 16 MiB
	add := func(name string, size int) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(size), Typeflag: tar.TypeReg, ModTime: mtime}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(body[:size]); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 1024 {
		add(fmt.Sprintf("base/5/%d", 16384+i), 8192)
	}
	for i := range 3 {
		add(fmt.Sprintf("base/5/%d", 30000+i), 16<<20)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkExtractSync is the local half of a restore: unpacking one part
// and making it durable the way Run does (syncfs where it reports errors,
// else an fsync per path). go test -bench ExtractSync -benchtime 10x.
func BenchmarkExtractSync(b *testing.B) {
	data := benchTar(b)
	d := defaultDurability()
	for _, way := range []string{"syncfs", "fsync"} {
		if way == "syncfs" && d.syncfs == nil {
			continue
		}
		b.Run(way, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; b.Loop(); i++ {
				dir := filepath.Join(b.TempDir(), fmt.Sprint(i))
				if err := os.Mkdir(dir, 0o700); err != nil {
					b.Fatal(err)
				}
				fss := &fileSystems{d: &durability{syncfs: d.syncfs, syncPath: fsyncPath}}
				if way == "fsync" {
					fss.d.syncfs = nil
				}
				if err := fss.add(dir, true); err != nil {
					b.Fatal(err)
				}
				if _, err := Extract(b.Context(), bytes.NewReader(data), dir, ExtractOptions{}); err != nil {
					b.Fatal(err)
				}
				if err := fss.sync(); err != nil {
					b.Fatal(err)
				}
				fss.close()
			}
		})
	}
}
