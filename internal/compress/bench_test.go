package compress

import (
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// BenchmarkZstdOptions compares the zstd encoder settings NewWriter could
// use on a WAL segment (PITR_BENCH_SEGMENT, or every file in
// PITR_BENCH_WAL_DIR/$PITR_BENCH_WAL_KIND, tpcb by default; sample data
// without), as docs/BENCHMARKS.md
// "Findings" 1 did end to end; and S2's better mode beside its default.
//
//	PITR_BENCH_WAL_DIR=... go test -run '^$' -bench ZstdOptions -benchtime 20x ./internal/compress/
func BenchmarkZstdOptions(b *testing.B) {
	segs := benchSegments(b)
	for _, o := range []struct {
		name string
		opts []zstd.EOption
	}{
		{"lowmem-2MiB-crc", []zstd.EOption{zstd.WithWindowSize(2 << 20), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(true)}},
		{"lowmem-2MiB", []zstd.EOption{zstd.WithWindowSize(2 << 20), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false)}},
		{"lowmem-1MiB", []zstd.EOption{zstd.WithWindowSize(1 << 20), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false)}},
		{"2MiB", []zstd.EOption{zstd.WithWindowSize(2 << 20), zstd.WithEncoderCRC(false)}},
		{"1MiB", []zstd.EOption{zstd.WithWindowSize(1 << 20), zstd.WithEncoderCRC(false)}},
	} {
		b.Run(o.name, func(b *testing.B) {
			enc, err := zstd.NewWriter(nil, append([]zstd.EOption{zstd.WithEncoderLevel(1), zstd.WithEncoderConcurrency(1)}, o.opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			benchStream(b, segs, func(w io.Writer) io.WriteCloser { enc.Reset(w); return enc })
		})
	}
	for _, better := range []bool{false, true} {
		name := "s2"
		if better {
			name = "s2-better"
		}
		b.Run(name, func(b *testing.B) {
			opts := []s2.WriterOption{s2.WriterConcurrency(1), s2.WriterBlockSize(streamBlock)}
			if better {
				opts = append(opts, s2.WriterBetterCompression())
			}
			sw := s2.NewWriter(nil, opts...)
			benchStream(b, segs, func(w io.Writer) io.WriteCloser { sw.Reset(w); return sw })
		})
	}
}

func benchSegments(b *testing.B) [][]byte {
	var names []string
	if p := os.Getenv("PITR_BENCH_SEGMENT"); p != "" {
		names = []string{p}
	} else if d := os.Getenv("PITR_BENCH_WAL_DIR"); d != "" {
		kind := os.Getenv("PITR_BENCH_WAL_KIND") // tpcb (default) or random
		if kind == "" {
			kind = "tpcb"
		}
		names, _ = filepath.Glob(filepath.Join(d, kind, "0000*"))
		sort.Strings(names)
	}
	var segs [][]byte
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			b.Fatal(err)
		}
		segs = append(segs, data)
	}
	if len(segs) == 0 {
		segs = [][]byte{sample(16 << 20)}
	}
	return segs
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchStream(b *testing.B, segs [][]byte, reset func(io.Writer) io.WriteCloser) {
	var in, out int64
	b.ReportAllocs()
	b.SetBytes(int64(len(segs[0])))
	start, n := cpuNow(), 0
	for b.Loop() {
		var c counter
		w := reset(&c)
		seg := segs[n%len(segs)]
		if _, err := w.Write(seg); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		in, out, n = in+int64(len(seg)), out+c.n, n+1
	}
	b.ReportMetric(float64(cpuNow()-start)/float64(n), "cpu-ns/op")
	b.ReportMetric(float64(out)/float64(in), "stored/input")
}
