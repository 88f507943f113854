package compress

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

func sample(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		if i%7 == 0 {
			b[i] = byte(r.IntN(256))
		} else {
			b[i] = byte(i / 1000)
		}
	}
	return b
}

func roundTrip(t *testing.T, newW func(io.Writer) (io.WriteCloser, error), data []byte, chunk int) {
	t.Helper()
	var buf bytes.Buffer
	w, err := newW(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		k := min(chunk, len(rest))
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip of %d bytes: %d back, err %v", len(data), len(got), err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, ParallelBlockSize - 1, ParallelBlockSize, 3*ParallelBlockSize + 17} {
		data := sample(n)
		roundTrip(t, func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, DefaultLevel) }, data, 100000)
		for _, workers := range []int{1, 2, 4} {
			roundTrip(t, func(w io.Writer) (io.WriteCloser, error) { return NewParallelWriter(w, DefaultLevel, workers) }, data, 333333)
		}
	}
}

func TestLevels(t *testing.T) {
	if _, err := NewWriter(io.Discard, 0); err == nil {
		t.Fatal("level 0 accepted")
	}
	if _, err := NewParallelWriter(io.Discard, 5, 2); err == nil {
		t.Fatal("level 5 accepted")
	}
}
