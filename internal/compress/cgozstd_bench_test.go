//go:build cgozstd

package compress

import (
	"bytes"
	"io"
	"testing"

	ddzstd "github.com/DataDog/zstd"
)

// BenchmarkCgoZstd measures libzstd (cgo, github.com/DataDog/zstd) at
// level 1 on one thread beside the pure-Go encoder NewWriter uses, on the
// same segments. It is behind the cgozstd build tag: the shipped binary
// stays pure Go and static.
//
//	PITR_BENCH_WAL_DIR=... go test -tags cgozstd -run '^$' -bench CgoZstd -benchtime 20x ./internal/compress/
func BenchmarkCgoZstd(b *testing.B) {
	segs := benchSegments(b)
	b.Run("libzstd-1", func(b *testing.B) {
		benchStream(b, segs, func(w io.Writer) io.WriteCloser {
			return ddzstd.NewWriterLevel(w, 1)
		})
	})
	b.Run("go-zstd-1", func(b *testing.B) {
		benchStream(b, segs, func(w io.Writer) io.WriteCloser {
			zw, err := NewWriter(w, Zstd, 1)
			if err != nil {
				b.Fatal(err)
			}
			return zw
		})
	})
	b.Run("libzstd-1-decode", func(b *testing.B) {
		stored := make([][]byte, len(segs))
		for i, s := range segs {
			stored[i], _ = ddzstd.CompressLevel(nil, s, 1)
		}
		n := 0
		start := cpuNow()
		for b.Loop() {
			r := ddzstd.NewReader(bytes.NewReader(stored[n%len(stored)]))
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
			r.Close()
			n++
		}
		b.ReportMetric(float64(cpuNow()-start)/float64(n), "cpu-ns/op")
	})
	b.Run("go-zstd-1-decode", func(b *testing.B) {
		stored := make([][]byte, len(segs))
		for i, s := range segs {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, Zstd, 1)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.Write(s); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			stored[i] = buf.Bytes()
		}
		n := 0
		start := cpuNow()
		for b.Loop() {
			r, _ := NewReader(bytes.NewReader(stored[n%len(stored)]))
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
			r.Close()
			n++
		}
		b.ReportMetric(float64(cpuNow()-start)/float64(n), "cpu-ns/op")
	})
}
