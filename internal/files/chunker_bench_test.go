package files

import (
	"bytes"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	fastcdc "github.com/jotfs/fastcdc-go"
	"github.com/restic/chunker"
)

// The chunker was chosen by these numbers (issue 10 asks to measure the
// candidates): both on the same ~200 MB of random data, for an average
// of about 1 MiB, chunks of 512 KiB to 8 MiB. Run with
//
//	go test -run '^$' -bench Chunker -benchtime 3x ./internal/files/
//
// github.com/kalbasit/fastcdc is not served by the module proxy here, so
// it was not measured.

const benchDataSize = 200 << 20

var benchData = sync.OnceValue(func() []byte {
	b := make([]byte, benchDataSize)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
})

func BenchmarkChunkerRestic(b *testing.B) {
	data := benchData()
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunker.MaxSize)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var chunks int
	for b.Loop() {
		chunks = 0
		c := chunker.NewWithBoundaries(bytes.NewReader(data), pol, 512<<10, 8<<20)
		c.SetAverageBits(20)
		for {
			_, err := c.Next(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			chunks++
		}
	}
	b.ReportMetric(float64(chunks), "chunks")
}

func BenchmarkChunkerFastCDC(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var chunks int
	for b.Loop() {
		chunks = 0
		c, err := fastcdc.NewChunker(bytes.NewReader(data), fastcdc.Options{
			AverageSize: 1 << 20, MinSize: 512 << 10, MaxSize: 8 << 20, Seed: 0x5eed,
		})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			chunks++
		}
	}
	b.ReportMetric(float64(chunks), "chunks")
}

// TestFastCDCSeedIsGlobal records why fastcdc-go, faster in the benchmark,
// was not chosen: its Seed is XORed into a package-global table by every
// NewChunker, so a second chunker with the same seed cuts elsewhere (the
// seed is undone), and chunkers made on two goroutines race.
func TestFastCDCSeedIsGlobal(t *testing.T) {
	data := randomBytes(3, 32<<20)
	cuts := func() []int {
		c, err := fastcdc.NewChunker(bytes.NewReader(data), fastcdc.Options{
			AverageSize: 1 << 20, MinSize: 512 << 10, MaxSize: 8 << 20, Seed: 0x5eed,
		})
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for {
			ch, err := c.Next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ch.Offset)
		}
	}
	first, second := cuts(), cuts()
	if slices.Equal(first, second) {
		t.Skip("fastcdc-go cuts the same with the same seed twice: its seed is no longer global; measure again")
	}
	_ = cuts() // the table back as it was
}
