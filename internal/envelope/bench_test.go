package envelope

import (
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
				s, _ := c.Seal(io.Discard)
				s.Write(data)
				s.Close()
			}
		})
	}
}
