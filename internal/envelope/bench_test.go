package envelope

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/compress"
)

// Codec benchmarks. Each seals or opens one object per iteration with
// encryption on, as pitr ships, on one goroutine (so ns/op is CPU per
// object), and reports stored/input. Run them as
//
//	go test -run '^$' -bench . -benchtime 20x -benchmem ./internal/envelope/
//
// The segments are real WAL when PITR_BENCH_WAL_DIR names a directory with
// tpcb/ (or pgbench/) and random/ subdirectories of segments
// (`bench/walpush.sh segments` makes pgbench/ and random/, though its
// pgbench/ is the WAL of `pgbench -i` when that alone fills the set; the
// first TPC-B segments after a checkpoint hold
// many full-page images and compress three times worse than later ones, so
// the benchmark cycles through every segment it finds). Without it they are
// synthetic: see walLike and incompressible.

const segSize = 16 << 20

// segments returns the segments of one kind: real ones from
// PITR_BENCH_WAL_DIR/<kind>, or one synthetic segment.
func segments(b *testing.B, kind string) [][]byte {
	if dir := os.Getenv("PITR_BENCH_WAL_DIR"); dir != "" {
		names, _ := filepath.Glob(filepath.Join(dir, kind, "0000*"))
		if len(names) == 0 && kind == "tpcb" { // bench/walpush.sh's name for it
			names, _ = filepath.Glob(filepath.Join(dir, "pgbench", "0000*"))
		}
		sort.Strings(names)
		var segs [][]byte
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				b.Fatal(err)
			}
			segs = append(segs, data)
		}
		if len(segs) > 0 {
			return segs
		}
		b.Logf("no segments in %s/%s: synthetic ones instead", dir, kind)
	}
	if kind == "random" {
		return [][]byte{incompressible()}
	}
	return [][]byte{walLike()}
}

// walLike returns a 16 MiB segment shaped like TPC-B WAL: 8 KiB pages of
// records, each a 24-byte header (length, xid counting up, the previous
// record's LSN, a random CRC), a block reference to one of 16,000 pages of
// pgbench_accounts and a changed tuple (aid, bid, abalance, 84 spaces of
// filler); every 40th record is a full-page image of such tuples with
// consecutive aids. zstd -1 stores it at about 0.1, like TPC-B WAL
// between checkpoints.
func walLike() []byte {
	r := rand.New(rand.NewPCG(13, 13))
	b := make([]byte, 0, segSize)
	le := binary.LittleEndian
	xid, lsn := uint32(1000), uint64(0x1000000)
	tuple := func(aid uint32) []byte {
		t := make([]byte, 0, 100)
		t = le.AppendUint32(t, aid)
		t = le.AppendUint32(t, aid/100000+1)
		t = le.AppendUint32(t, uint32(r.IntN(10000)))
		return append(t, bytes.Repeat([]byte(" "), 84)...)
	}
	for n := 0; len(b) < segSize; n++ {
		if len(b)%8192 == 0 {
			b = le.AppendUint16(b, 0xd110) // page magic
			b = le.AppendUint16(b, 0)
			b = le.AppendUint32(b, 1)
			b = le.AppendUint64(b, uint64(len(b))+0x1000000)
			b = le.AppendUint32(b, 0)
		}
		var rec []byte
		block := uint32(r.IntN(16000))
		if n%40 == 0 {
			for aid := block * 61; len(rec) < 8000; aid++ {
				rec = append(rec, tuple(aid)...)
			}
		} else {
			rec = tuple(uint32(r.IntN(1000000)))
		}
		h := make([]byte, 0, 36)
		h = le.AppendUint32(h, uint32(len(rec)+36))
		h = le.AppendUint32(h, xid)
		h = le.AppendUint64(h, lsn)
		h = append(h, 0x10, 10, 0, 0)
		h = le.AppendUint32(h, r.Uint32())
		h = le.AppendUint32(h, 16384)
		h = le.AppendUint32(h, 16397)
		h = le.AppendUint32(h, block)
		b = append(b, h...)
		b = append(b, rec...)
		xid += uint32(n % 2)
		lsn += uint64(len(rec) + 36)
	}
	return b[:segSize]
}

// incompressible returns a segment of random bytes: WAL of rows of
// gen_random_bytes, which every codec stores at about 0.9 to 1.0.
func incompressible() []byte {
	b := make([]byte, segSize)
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}

func benchCodec(b *testing.B, alg compress.Algorithm, workers int) *Codec {
	c := newCodec(&testing.T{})
	c.Compression, c.Workers = alg, workers
	return c
}

func sealBytes(b *testing.B, c *Codec, data []byte, w io.Writer) *Sealer {
	s, err := c.Seal(w)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return s
}

// cpuTime is this process's user+system CPU time so far: on a machine
// shared with other work, CPU per object is steadier than ns/op.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports CPU ns per iteration of the loop it brackets.
type cpuMeter struct {
	start time.Duration
	n     int
}

func startCPU() *cpuMeter { return &cpuMeter{start: cpuTime()} }

func (m *cpuMeter) report(b *testing.B) {
	if m.n > 0 {
		b.ReportMetric(float64(cpuTime()-m.start)/float64(m.n), "cpu-ns/op")
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkSeal seals 16 MiB WAL segments as wal-push does (one stream,
// one goroutine). ns/op is CPU per segment.
func BenchmarkSeal(b *testing.B) {
	for _, kind := range []string{"tpcb", "random"} {
		segs := segments(b, kind)
		for _, alg := range compress.Algorithms {
			b.Run(string(alg)+"/"+kind, func(b *testing.B) {
				c := benchCodec(b, alg, 0)
				var in, out int64
				b.SetBytes(segSize)
				b.ReportAllocs()
				i := 0
				cpu := startCPU()
				for b.Loop() {
					cpu.n++
					var cw countWriter
					sealBytes(b, c, segs[i%len(segs)], &cw)
					in, out = in+segSize, out+cw.n
					i++
				}
				cpu.report(b)
				b.ReportMetric(float64(out)/float64(in), "stored/input")
			})
		}
	}
}

// BenchmarkSealFile seals segments from files as wal-push does: io.Copy
// from an *os.File, which reads through Sealer.ReadFrom.
func BenchmarkSealFile(b *testing.B) {
	dir := b.TempDir()
	var paths []string
	for i, seg := range segments(b, "tpcb") {
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, seg, 0o600); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	for _, alg := range compress.Algorithms {
		b.Run(string(alg)+"/tpcb", func(b *testing.B) {
			c := benchCodec(b, alg, 0)
			b.SetBytes(segSize)
			b.ReportAllocs()
			i := 0
			cpu := startCPU()
			for b.Loop() {
				cpu.n++
				f, err := os.Open(paths[i%len(paths)])
				if err != nil {
					b.Fatal(err)
				}
				s, err := c.Seal(io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(s, f); err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				f.Close()
				i++
			}
			cpu.report(b)
		})
	}
}

// BenchmarkOpen opens sealed segments as wal-fetch does: decrypt,
// decompress, check the SHA-256.
func BenchmarkOpen(b *testing.B) {
	for _, kind := range []string{"tpcb", "random"} {
		segs := segments(b, kind)
		for _, alg := range compress.Algorithms {
			b.Run(string(alg)+"/"+kind, func(b *testing.B) {
				c := benchCodec(b, alg, 0)
				stored, sums := make([][]byte, len(segs)), make([]string, len(segs))
				for i, seg := range segs {
					var buf bytes.Buffer
					sums[i] = sealBytes(b, c, seg, &buf).Sum()
					stored[i] = buf.Bytes()
				}
				b.SetBytes(segSize)
				b.ReportAllocs()
				i := 0
				cpu := startCPU()
				for b.Loop() {
					cpu.n++
					openAll(b, c, stored[i%len(stored)], sums[i%len(stored)])
					i++
				}
				cpu.report(b)
			})
		}
	}
}

func openAll(b *testing.B, c *Codec, stored []byte, sum string) {
	r, err := c.Open(bytes.NewReader(stored), true, sum)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		b.Fatal(err)
	}
	r.Close()
}

// benchPlaintext is 64 MiB that compresses about as well as table data:
// runs of text with random bytes sprinkled in.
func benchPlaintext() []byte {
	b := make([]byte, 64<<20)
	words := []byte("pgbench_accounts aid bid abalance filler ")
	rnd := uint32(1)
	for i := range b {
		rnd = rnd*1664525 + 1013904223
		if rnd>>28 == 0 {
			b[i] = byte(rnd >> 8)
		} else {
			b[i] = words[i%len(words)]
		}
	}
	return b
}

// BenchmarkBackupSeal seals a 64 MiB backup-like stream through the
// parallel writer on 2 workers, as a base backup does.
func BenchmarkBackupSeal(b *testing.B) {
	data := benchPlaintext()
	for _, alg := range compress.Algorithms {
		b.Run(string(alg), func(b *testing.B) {
			c := benchCodec(b, alg, 2)
			var in, out int64
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				cpu.n++
				var cw countWriter
				sealBytes(b, c, data, &cw)
				in, out = in+int64(len(data)), out+cw.n
			}
			cpu.report(b)
			b.ReportMetric(float64(out)/float64(in), "stored/input")
		})
	}
}

// BenchmarkBackupOpen opens that stream (parallel frames, encrypted) and
// reads it to the end, as a restore does: decrypt, decompress, hash.
func BenchmarkBackupOpen(b *testing.B) {
	data := benchPlaintext()
	for _, alg := range compress.Algorithms {
		b.Run(string(alg), func(b *testing.B) {
			c := benchCodec(b, alg, 2)
			var stored bytes.Buffer
			sum := sealBytes(b, c, data, &stored).Sum()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				cpu.n++
				openAll(b, c, stored.Bytes(), sum)
			}
			cpu.report(b)
		})
	}
}
