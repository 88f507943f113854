package compress

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
)

// s2BlockReader reads an S2 (or Snappy) framed stream for a caller that checks
// the plaintext itself: it skips the blocks' CRC32C, as
// s2.ReaderIgnoreCRC does, and decodes each block straight into the
// caller's buffer when it is large enough. s2.Reader always decodes into
// its own buffer and copies out, which cost a restore about 7 % of its
// CPU (docs/BENCHMARKS.md, the reruns at c3babf6). The blocks themselves are
// s2.Decode's; only the framing (github.com/google/snappy's
// framing_format.txt) is read here.
type s2BlockReader struct {
	r       io.Reader
	hdr     [4]byte
	in      []byte // a compressed block
	out     []byte // a block decoded here when the caller's buffer was too small
	pending []byte // the part of out not yet read
	started bool
	snappy  bool
	err     error
}

const (
	s2MaxBlock     = 4 << 20 // as s2.ReaderMaxBlockSize in newDecoder
	snappyMaxBlock = 64 << 10
	s2CRCSize      = 4
)

func (b *s2BlockReader) Read(p []byte) (int, error) {
	for {
		if len(b.pending) > 0 {
			n := copy(p, b.pending)
			b.pending = b.pending[n:]
			return n, nil
		}
		if b.err != nil {
			return 0, b.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		n, err := b.next(p)
		if err != nil {
			b.err = err
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// next reads one chunk: it returns how many bytes it decoded into p (0
// when the block went to b.pending, or the chunk held no data), and no
// bytes with an error.
func (b *s2BlockReader) next(p []byte) (int, error) {
	if _, err := io.ReadFull(b.r, b.hdr[:]); err != nil {
		if err == io.EOF && b.started {
			return 0, io.EOF
		}
		return 0, b.truncated(err)
	}
	typ := b.hdr[0]
	size := int(b.hdr[1]) | int(b.hdr[2])<<8 | int(b.hdr[3])<<16
	if !b.started && typ != 0xff {
		return 0, s2.ErrCorrupt
	}
	switch {
	case typ == 0xff: // stream identifier
		if size != 6 {
			return 0, s2.ErrCorrupt
		}
		var id [6]byte
		if _, err := io.ReadFull(b.r, id[:]); err != nil {
			return 0, b.truncated(err)
		}
		switch string(id[:]) {
		case "S2sTwO":
			b.snappy = false
		case "sNaPpY":
			b.snappy = true
		default:
			return 0, s2.ErrCorrupt
		}
		b.started = true
		return 0, nil
	case typ == 0x00 || typ == 0x01: // compressed or uncompressed data
		if size < s2CRCSize || size-s2CRCSize > s2.MaxEncodedLen(s2MaxBlock) {
			return 0, s2.ErrCorrupt
		}
		if cap(b.in) < size {
			b.in = make([]byte, size)
		}
		in := b.in[:size]
		if _, err := io.ReadFull(b.r, in); err != nil {
			return 0, b.truncated(err)
		}
		in = in[s2CRCSize:]
		n := len(in)
		if typ == 0x00 {
			var err error
			if n, err = s2.DecodedLen(in); err != nil {
				return 0, err // s2's errors name it
			}
		}
		limit := s2MaxBlock
		if b.snappy {
			limit = snappyMaxBlock
		}
		if n > limit {
			return 0, s2.ErrCorrupt
		}
		dst := p
		if len(p) < n {
			if cap(b.out) < n {
				b.out = make([]byte, n)
			}
			dst = b.out[:n]
		}
		if typ == 0x01 {
			copy(dst, in)
		} else if _, err := s2.Decode(dst[:n], in); err != nil {
			return 0, err
		}
		if len(p) < n {
			b.pending = dst[:n]
			return 0, nil
		}
		return n, nil
	case typ <= 0x7f: // reserved unskippable
		return 0, fmt.Errorf("s2: unsupported chunk type %#x", typ)
	default: // padding, the index, reserved skippable
		if _, err := io.CopyN(io.Discard, b.r, int64(size)); err != nil {
			return 0, b.truncated(err)
		}
		return 0, nil
	}
}

func (b *s2BlockReader) truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("s2: %w", io.ErrUnexpectedEOF)
	}
	return err
}

func (*s2BlockReader) Close() error { return nil }
