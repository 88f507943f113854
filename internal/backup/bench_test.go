package backup

import (
	"crypto/sha256"
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
