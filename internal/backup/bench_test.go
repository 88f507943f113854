package backup

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkPageChecksum: data checksum verification, per 8 kB page.
func BenchmarkPageChecksum(b *testing.B) {
	page := make([]byte, blockSize)
	for i := range page {
		page[i] = byte(i * 7)
	}
	b.SetBytes(blockSize)
	for b.Loop() {
		pageChecksum(page, 1)
	}
}

// BenchmarkManifestSHA256: the manifest's per-file checksum, per 1 MiB chunk.
func BenchmarkManifestSHA256(b *testing.B) {
	buf := make([]byte, readChunk)
	h := sha256.New()
	b.SetBytes(readChunk)
	for b.Loop() {
		h.Write(buf)
	}
}

// BenchmarkWriteTar: the direct reader's own cost, from page cache into a
// discarded tar with page checks and the manifest's SHA-256 (compression
// and upload not included), per byte of files.
func BenchmarkWriteTar(b *testing.B) {
	dir := b.TempDir()
	var es []*entry
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i)
	}
	for i := range 16 {
		p := filepath.Join(dir, strconv.Itoa(16384+i))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		es = append(es, &entry{name: "base/5/" + filepath.Base(p), path: p, mode: 0o600, size: int64(len(data)), verify: true})
	}
	pc := &pageChecker{start: 1, segBlocks: 131072} // every page newer than the start: sums only
	b.SetBytes(int64(len(es) * len(data)))
	for b.Loop() {
		if _, err := writeTar(b.Context(), io.Discard, es, pc, nil, func(*entry, int64, []byte) {}); err != nil {
			b.Fatal(err)
		}
	}
}
