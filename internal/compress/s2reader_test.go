package compress

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
)

// readUnchecked decodes stored through NewUncheckedReader in reads of
// size bytes.
func readUnchecked(stored []byte, size int) ([]byte, error) {
	r, err := NewUncheckedReader(bytes.NewReader(stored))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func s2Stream(t *testing.T, data []byte, opts ...s2.WriterOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := s2.NewWriter(&buf, opts...)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestS2BlockReader(t *testing.T) {
	random := make([]byte, 3<<20) // S2 stores these blocks uncompressed
	rr := rand.New(rand.NewChaCha8([32]byte{3, 4}))
	for i := range random {
		random[i] = byte(rr.Uint32())
	}
	data := append(sample(5<<20+12345), random...)
	ours := compressed(t, func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, S2, DefaultLevel) }, data, 1<<16)
	streams := map[string][]byte{
		"NewWriter":         ours,
		"index and padding": s2Stream(t, data, s2.WriterAddIndex(), s2.WriterPadding(4096), s2.WriterBlockSize(4<<20)),
		"snappy framing":    s2Stream(t, data, s2.WriterSnappyCompat()),
		"better, 64 KiB":    s2Stream(t, data, s2.WriterBetterCompression(), s2.WriterBlockSize(64<<10)),
	}
	for name, stored := range streams {
		for _, size := range []int{1 << 20, 4 << 20, 256 << 10, 1000, 1} {
			if size == 1 && len(stored) > 1<<20 && name != "NewWriter" {
				continue
			}
			got, err := readUnchecked(stored, size)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s, reads of %d: %d of %d bytes back, err %v", name, size, len(got), len(data), err)
			}
		}
	}
	if got, err := readUnchecked(s2Magic, 1<<20); err != nil || len(got) != 0 {
		t.Errorf("a stream of only the identifier: %d bytes, err %v", len(got), err)
	}
}

func TestS2BlockReaderBad(t *testing.T) {
	data := sample(3 << 20)
	stored := compressed(t, func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, S2, DefaultLevel) }, data, 1<<16)
	for _, cut := range []int{len(s2Magic) + 2, len(s2Magic) + 100, len(stored) / 2, len(stored) - 1} {
		if _, err := readUnchecked(stored[:cut], 1<<20); !errors.Is(err, io.ErrUnexpectedEOF) || !strings.HasPrefix(err.Error(), "s2") {
			t.Errorf("cut at %d: err = %v, want s2: unexpected EOF", cut, err)
		}
	}
	for name, bad := range map[string][]byte{
		"reserved chunk type": append(bytes.Clone(s2Magic), 0x02, 0x01, 0x00, 0x00, 0x00),
		"block past 4 MiB":    append(bytes.Clone(s2Magic), 0x01, 0x00, 0x00, 0x50),
		"chunk under its CRC": append(bytes.Clone(s2Magic), 0x00, 0x02, 0x00, 0x00, 0x00, 0x00),
		"second identifier":   append(bytes.Clone(s2Magic), 0xff, 0x06, 0x00, 0x00, 'S', '2', 's', 'T', 'w', 'X'),
	} {
		if _, err := readUnchecked(bad, 1<<20); err == nil || !strings.HasPrefix(err.Error(), "s2") {
			t.Errorf("%s: err = %v, want an s2 error", name, err)
		}
	}
	// Damage anywhere must give an error or other bytes, never a panic or
	// a hang; the caller's own checksum catches other bytes.
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		bad := bytes.Clone(stored)
		for range 1 + r.IntN(4) {
			bad[len(s2Magic)+r.IntN(len(bad)-len(s2Magic))] ^= byte(1 + r.IntN(255))
		}
		got, err := readUnchecked(bad, 1<<20)
		if err == nil && len(got) > 4<<20 {
			t.Fatalf("a damaged stream decoded to %d bytes", len(got))
		}
	}
}
