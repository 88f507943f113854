package compress

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
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

func compressed(t testing.TB, newW func(io.Writer) (io.WriteCloser, error), data []byte, chunk int) []byte {
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
	return buf.Bytes()
}

func decompress(stored []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(stored))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func roundTrip(t *testing.T, newW func(io.Writer) (io.WriteCloser, error), data []byte, chunk int) []byte {
	t.Helper()
	stored := compressed(t, newW, data, chunk)
	got, err := decompress(stored)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip of %d bytes: %d back, err %v", len(data), len(got), err)
	}
	return stored
}

func TestRoundTrip(t *testing.T) {
	for _, alg := range Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			for _, n := range []int{0, 1, ParallelBlockSize - 1, ParallelBlockSize, 3*ParallelBlockSize + 17} {
				data := sample(n)
				stored := roundTrip(t, func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, alg, DefaultLevel) }, data, 100000)
				if got, err := Detect(stored); err != nil || got != alg {
					t.Fatalf("%d bytes: detected %q, %v", n, got, err)
				}
				for _, workers := range []int{1, 2, 4} {
					stored := roundTrip(t, func(w io.Writer) (io.WriteCloser, error) { return NewParallelWriter(w, alg, DefaultLevel, workers) }, data, 333333)
					if got, err := Detect(stored); err != nil || got != alg {
						t.Fatalf("parallel, %d bytes: detected %q, %v", n, got, err)
					}
				}
			}
		})
	}
}

// TestPooledWriters reuses each codec's pooled encoder for a second,
// different stream: nothing of the first may leak into it.
func TestPooledWriters(t *testing.T) {
	for _, alg := range Algorithms {
		a, b := sample(1<<20), bytes.Repeat([]byte("other "), 50000)
		roundTrip(t, func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, alg, DefaultLevel) }, a, 4096)
		roundTrip(t, func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, alg, DefaultLevel) }, b, 4096)
	}
}

// TestOldZstd opens what the zstd writer of earlier versions wrote: a frame
// with a content checksum and a 2 MiB window, parallel frames with
// checksums, and nothing at all for an empty parallel stream.
func TestOldZstd(t *testing.T) {
	for _, name := range []string{"old-segment.zst", "old-parallel.zst"} {
		stored, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if stored[4]&0x04 == 0 {
			t.Fatalf("%s: frame has no content checksum flag", name)
		}
		got, err := decompress(stored)
		if err != nil || !bytes.Equal(got, oldPlain()) {
			t.Fatalf("%s: %d bytes back, err %v", name, len(got), err)
		}
		bad := bytes.Clone(stored)
		bad[len(bad)-1] ^= 0x80 // the last frame's checksum
		if _, err := decompress(bad); err == nil {
			t.Fatalf("%s: a wrong content checksum was accepted", name)
		}
	}
	if got, err := decompress(nil); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %d bytes, err %v", len(got), err)
	}
}

// oldPlain is the plaintext of testdata/old-*.zst (made with the writers
// of pitr before compress.Algorithm, with content checksums on).
func oldPlain() []byte {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 5<<20+3)
	for i := range b {
		if i%997 == 0 {
			b[i] = byte(r.IntN(256))
		} else {
			b[i] = byte(i / 1000)
		}
	}
	return b
}

// TestNoChecksum checks that new zstd frames carry no content checksum
// and lz4 frames neither: SHA-256 and age cover objects.
func TestNoChecksum(t *testing.T) {
	data := sample(1 << 20)
	for _, newW := range []func(io.Writer) (io.WriteCloser, error){
		func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, Zstd, 1) },
		func(w io.Writer) (io.WriteCloser, error) { return NewParallelWriter(w, Zstd, 1, 2) },
	} {
		if stored := compressed(t, newW, data, 1<<16); stored[4]&0x04 != 0 {
			t.Fatalf("zstd frame descriptor %#x has the checksum flag", stored[4])
		}
	}
	for _, newW := range []func(io.Writer) (io.WriteCloser, error){
		func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, LZ4, 1) },
		func(w io.Writer) (io.WriteCloser, error) { return NewParallelWriter(w, LZ4, 1, 2) },
	} {
		if stored := compressed(t, newW, data, 1<<16); stored[4]&0x04 != 0 {
			t.Fatalf("lz4 frame FLG %#x has the content checksum flag", stored[4])
		}
	}
}

func TestBadStreams(t *testing.T) {
	for _, bad := range [][]byte{{0x00}, []byte("plain text, not compressed"), {0x28, 0xb5}, []byte("\xff\x06\x00\x00sNaPpX")} {
		if _, err := decompress(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("%q: err = %v, want ErrFormat", bad, err)
		}
	}
	data := sample(3 << 20)
	for _, alg := range Algorithms {
		stored := compressed(t, func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, alg, DefaultLevel) }, data, 1<<16)
		if _, err := decompress(stored[:len(stored)/2]); err == nil {
			t.Errorf("%s: a stream cut in the middle of a block decoded without error", alg)
		} else if !strings.Contains(err.Error(), string(alg)) {
			t.Errorf("%s: error %q does not name the codec", alg, err)
		}
		bad := bytes.Clone(stored)
		bad[len(bad)/2] ^= 0xff
		if got, err := decompress(bad); err == nil && bytes.Equal(got, data) {
			t.Errorf("%s: a flipped byte went unnoticed", alg)
		}
	}
}

func TestLevels(t *testing.T) {
	if _, err := NewWriter(io.Discard, Zstd, 0); err == nil {
		t.Fatal("level 0 accepted")
	}
	if _, err := NewParallelWriter(io.Discard, Zstd, 5, 2); err == nil {
		t.Fatal("level 5 accepted")
	}
	if _, err := NewWriter(io.Discard, "gzip", 1); err == nil {
		t.Fatal("gzip accepted")
	}
	if _, err := ParseAlgorithm("LZ4"); err == nil {
		t.Fatal("LZ4 accepted")
	}
	for _, a := range Algorithms {
		if got, err := ParseAlgorithm(string(a)); err != nil || got != a {
			t.Fatalf("ParseAlgorithm(%q) = %q, %v", a, got, err)
		}
	}
}

// TestTools decodes each codec's output, single and parallel, with the
// codec's own command-line tool where it is installed (zstd, lz4, s2d),
// as docs/FORMAT.md tells users to. .ci/test.sh installs all three and sets
// PITR_TEST_REQUIRE=1, which turns a missing tool into a failure.
func TestTools(t *testing.T) {
	data := sample(2*ParallelBlockSize + 5)
	for alg, tool := range map[Algorithm][]string{Zstd: {"zstd", "-dc"}, LZ4: {"lz4", "-dc"}, S2: {"s2d", "-c"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			if os.Getenv("PITR_TEST_REQUIRE") == "1" {
				t.Fatalf("%s not installed (PITR_TEST_REQUIRE=1): %v", tool[0], err)
			}
			t.Logf("%s not installed: %s not checked", tool[0], alg)
			continue
		}
		for _, par := range []bool{false, true} {
			stored := compressed(t, func(w io.Writer) (io.WriteCloser, error) {
				if par {
					return NewParallelWriter(w, alg, DefaultLevel, 2)
				}
				return NewWriter(w, alg, DefaultLevel)
			}, data, 1<<20)
			cmd := exec.Command(tool[0], append(tool[1:], "-")...)
			cmd.Stdin = bytes.NewReader(stored)
			got, err := cmd.Output()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s (parallel %v): %d bytes back, err %v", tool[0], par, len(got), err)
			}
		}
	}
}

// TestSnappyStream reads a stream in snappy's framing (magic "sNaPpY"),
// which S2's reader decodes too.
func TestSnappyStream(t *testing.T) {
	data := sample(1 << 20)
	var buf bytes.Buffer
	w := s2.NewWriter(&buf, s2.WriterSnappyCompat())
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), snappyMagic) {
		t.Fatalf("snappy stream starts %x", buf.Bytes()[:10])
	}
	if got, err := decompress(buf.Bytes()); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("snappy stream: %d bytes back, err %v", len(got), err)
	}
}
