package envelope

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// BenchmarkSealSegment seals a real WAL segment when PITR_BENCH_SEGMENT
// names one (bench/walpush.sh leaves them in /var/tmp/pitr-bench/segments).
func BenchmarkSealSegment(b *testing.B) {
	path := os.Getenv("PITR_BENCH_SEGMENT")
	if path == "" {
		b.Skip("set PITR_BENCH_SEGMENT to a WAL segment file")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, encrypt := range []bool{false, true} {
		name := "zstd"
		if encrypt {
			name = "zstd+age"
		}
		b.Run(name, func(b *testing.B) {
			c := newCodec(&testing.T{})
			c.Encrypt = encrypt
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				s, err := c.Seal(io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Write(data); err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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

// BenchmarkOpen opens a backup-like object (parallel frames, encrypted) and
// reads it to the end, as a restore does: decrypt, decompress, hash.
func BenchmarkOpen(b *testing.B) {
	data := benchPlaintext()
	c := newCodec(&testing.T{})
	c.Encrypt, c.Workers = true, 2
	var stored bytes.Buffer
	s, err := c.Seal(&stored)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	sum := s.Sum()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := c.Open(bytes.NewReader(stored.Bytes()), true, sum)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
