package main

import (
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// cmdCodecs times, in this one process, the pieces of wal-push's sealing
// per 16 MiB segment: zstd as internal/compress configures it and variants,
// SHA-256, MD5 and age. Each variant runs over the same segments held in
// memory, interleaved, three times; the fastest repetition is reported.
//
//	walpush codecs SEGDIR FROM COUNT
func cmdCodecs(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: codecs SEGDIR FROM COUNT")
	}
	from, err1 := strconv.Atoi(args[1])
	n, err2 := strconv.Atoi(args[2])
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	names, err := segments(args[0], from+n)
	if err != nil {
		return err
	}
	var segs [][]byte
	var in int64
	for _, name := range names[from:] {
		b, err := os.ReadFile(filepath.Join(args[0], name))
		if err != nil {
			return err
		}
		segs = append(segs, b)
		in += int64(len(b))
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	// zstdWith compresses a segment in 256 KiB writes, as io.Copy from the
	// segment file into the sealer does, and counts the output.
	zstdWith := func(opts ...zstd.EOption) func([]byte) int64 {
		return func(b []byte) int64 {
			var cw countingWriter
			w, err := zstd.NewWriter(&cw, opts...)
			if err != nil {
				panic(err)
			}
			for off := 0; off < len(b); off += 256 << 10 {
				if _, err := w.Write(b[off:min(off+256<<10, len(b))]); err != nil {
					panic(err)
				}
			}
			w.Close()
			return cw.n
		}
	}
	level1 := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1)}
	with := func(extra ...zstd.EOption) []zstd.EOption {
		return append(append([]zstd.EOption(nil), level1...), extra...)
	}
	type variant struct {
		name     string
		f        func([]byte) int64
		wall     float64 // ms per segment, fastest repetition
		cpu      float64
		out      int64
		measured bool
	}
	vs := []*variant{
		{name: "zstd as internal/compress (2 MiB window, WithLowerEncoderMem)",
			f: zstdWith(with(zstd.WithWindowSize(2<<20), zstd.WithLowerEncoderMem(true))...)},
		{name: "zstd 2 MiB window, without WithLowerEncoderMem", f: zstdWith(with(zstd.WithWindowSize(2 << 20))...)},
		{name: "zstd 1 MiB window, WithLowerEncoderMem",
			f: zstdWith(with(zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))...)},
		{name: "sha256", f: func(b []byte) int64 { sha256.Sum256(b); return 0 }},
		{name: "md5", f: func(b []byte) int64 { md5.Sum(b); return 0 }},
		{name: "age (X25519, ChaCha20-Poly1305)", f: func(b []byte) int64 {
			var cw countingWriter
			w, err := age.Encrypt(&cw, id.Recipient())
			if err != nil {
				panic(err)
			}
			if _, err := w.Write(b); err != nil {
				panic(err)
			}
			w.Close()
			return 0
		}},
	}
	for rep := 0; rep < 3; rep++ {
		for _, v := range vs {
			var r0, r1 syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r0); err != nil {
				return fmt.Errorf("getrusage: %w", err)
			}
			start := time.Now()
			var out int64
			for _, b := range segs {
				out += v.f(b)
			}
			wall := float64(time.Since(start).Microseconds()) / 1000 / float64(len(segs))
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r1); err != nil {
				return fmt.Errorf("getrusage: %w", err)
			}
			cpu := float64(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano()) / 1e6 / float64(len(segs))
			if !v.measured || wall < v.wall {
				v.wall, v.cpu, v.out, v.measured = wall, cpu, out, true
			}
		}
	}
	fmt.Printf("%d segments from %s, %d on; per segment, fastest of 3 interleaved repetitions\n", len(segs), args[0], from)
	for _, v := range vs {
		ratio := ""
		if v.out > 0 {
			ratio = fmt.Sprintf("  stored/input %.4f", float64(v.out)/float64(in))
		}
		fmt.Printf("%-64s %6.1f ms wall %6.1f ms CPU%s\n", v.name, v.wall, v.cpu, ratio)
	}
	return nil
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)
