// Package compress wraps the three codecs pitr writes (zstd, lz4 frames and
// S2 streams) as streaming writers and readers tuned for many short-lived
// processes: one goroutine per stream and small buffers, so that eight
// concurrent uploads in one wal-push stay well under 64 MiB of memory.
//
// Every codec's output starts with its format's magic bytes, so a reader
// needs no record of which codec wrote an object: NewReader recognises it
// (zstd 28 B5 2F FD, lz4 frame 04 22 4D 18, S2 stream FF 06 00 00 "S2sTwO",
// snappy FF 06 00 00 "sNaPpY").
package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Algorithm names a codec as the `compression` setting spells it.
type Algorithm string

const (
	Zstd Algorithm = "zstd" // github.com/klauspost/compress/zstd, frames `zstd -d` reads
	LZ4  Algorithm = "lz4"  // github.com/pierrec/lz4/v4, frames `lz4 -d` reads
	S2   Algorithm = "s2"   // github.com/klauspost/compress/s2, streams `s2d` reads
)

// Algorithms lists every codec.
var Algorithms = []Algorithm{Zstd, LZ4, S2}

// DefaultAlgorithm is the codec for new objects when none is configured.
// S2 costs 0.3-0.4x the CPU of zstd level 1 per WAL segment and stores
// 1.3-1.5x its bytes on TPC-B WAL (the same on incompressible WAL); with
// the store's CPU per stored byte counted, it is the cheapest of the three
// (docs/BENCHMARKS.md, BenchmarkSeal in internal/envelope).
const DefaultAlgorithm = S2

// ParseAlgorithm checks a `compression` setting.
func ParseAlgorithm(s string) (Algorithm, error) {
	for _, a := range Algorithms {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("compression %q: want zstd, lz4 or s2", s)
}

// DefaultLevel is zstd's fastest level: on WAL it stores about 0.11 of the
// input at the speed of lz4 (see docs/BENCHMARKS.md); uploading costs more
// than compressing, so higher levels rarely pay. lz4 and S2 have one level.
const DefaultLevel = 1

// windowSize bounds the zstd encoder's history. WAL records rarely repeat
// further apart than this (a 1 MiB window compresses pgbench WAL exactly as
// well as 2 MiB). Without WithLowerEncoderMem the encoder keeps 2x the
// window of history and moves it down once per window of input; with it,
// it kept window + 128 KiB and moved the whole window every 128 KiB block,
// 16x the input for the 2 MiB window of earlier versions
// (docs/BENCHMARKS.md, "Findings" 1). 1 MiB without the option holds the
// same 2 MiB per encoder as 2 MiB with it, and copies 1x.
const windowSize = 1 << 20

// maxDecoderWindow refuses frames that ask for more history than any pitr
// writer uses (protects restore from hostile objects that demand gigabytes).
const maxDecoderWindow = 64 << 20

// streamBlock is the block size of lz4 and S2 streams written by NewWriter:
// lz4's window is 64 KiB and S2's a block, so larger blocks only cost memory.
const streamBlock = 1 << 20

// ErrFormat is wrapped when an object's plaintext starts with no magic of
// a known codec.
var ErrFormat = errors.New("unrecognised compression format")

func checkLevel(alg Algorithm, level int) error {
	switch alg {
	case Zstd:
		if level < 1 || level > 4 {
			return fmt.Errorf("zstd level %d out of range 1..4", level)
		}
		return nil
	case LZ4, S2:
		return nil
	}
	return fmt.Errorf("compression %q: want zstd, lz4 or s2", string(alg))
}

// NewWriter returns an encoder of alg writing one stream to w; level is
// zstd's, 1 (fastest) to 4 (best), and ignored by lz4 and S2. Close flushes
// the stream; it does not close w. Encoders are reused after Close: a
// long-running process (wal-receive seals a chunk every second, or every
// commit when synchronous) would otherwise turn megabytes of encoder state
// into garbage per object.
//
// No codec writes its own content checksum: the plaintext's SHA-256 and
// age's authentication cover every object (S2's per-chunk CRC is part of
// its format and stays).
func NewWriter(w io.Writer, alg Algorithm, level int) (io.WriteCloser, error) {
	if err := checkLevel(alg, level); err != nil {
		return nil, err
	}
	switch alg {
	case LZ4:
		if zw, ok := lz4Writers.get(); ok {
			zw.Reset(w)
			return &lz4Writer{Writer: zw}, nil
		}
		zw := lz4.NewWriter(w)
		if err := zw.Apply(lz4.BlockSizeOption(lz4.Block1Mb), lz4.ChecksumOption(false), lz4.ConcurrencyOption(1)); err != nil {
			return nil, fmt.Errorf("lz4 encoder: %w", err)
		}
		return &lz4Writer{Writer: zw}, nil
	case S2:
		if sw, ok := s2Writers.get(); ok {
			sw.Reset(w)
			return &s2Writer{Writer: sw, w: w}, nil
		}
		return &s2Writer{Writer: s2.NewWriter(w, s2.WriterConcurrency(1), s2.WriterBlockSize(streamBlock)), w: w}, nil
	}
	if enc, ok := encoders[level].get(); ok {
		enc.Reset(w)
		return &pooledWriter{Encoder: enc, level: level}, nil
	}
	enc, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(windowSize),
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &pooledWriter{Encoder: enc, level: level}, nil
}

// Idle encoders, kept for the next stream. A long-running process (pitr
// daemon serving wal-push, wal-receive sealing a chunk every second) would
// otherwise allocate megabytes of encoder state per object: a sync.Pool is
// emptied by every other garbage collection, and at the low GOGC those
// processes run with that is most objects. A few idle encoders per codec
// stay; more than run at once are never made.
const idleEncoders = 8

var (
	encoders   [5]freeList[*zstd.Encoder] // zstd, by level
	lz4Writers = newFreeList[*lz4.Writer](idleEncoders)
	s2Writers  = newFreeList[*s2.Writer](idleEncoders)
)

func init() {
	for i := range encoders {
		encoders[i] = newFreeList[*zstd.Encoder](idleEncoders)
	}
}

// freeList holds up to its capacity of idle values; unlike a sync.Pool,
// a garbage collection leaves them.
type freeList[T any] struct{ c chan T }

func newFreeList[T any](n int) freeList[T] { return freeList[T]{c: make(chan T, n)} }

func (f freeList[T]) get() (T, bool) {
	select {
	case v := <-f.c:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

// put keeps v unless the list is full.
func (f freeList[T]) put(v T) {
	select {
	case f.c <- v:
	default:
	}
}

// pooledWriter returns its encoder to the pool on the first Close.
type pooledWriter struct {
	*zstd.Encoder
	level  int
	closed bool
}

func (p *pooledWriter) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.Encoder.Close()
	if err == nil {
		p.Reset(nil)
		encoders[p.level].put(p.Encoder)
	}
	p.Encoder = nil
	return err
}

type lz4Writer struct {
	*lz4.Writer
	closed bool
}

func (p *lz4Writer) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.Writer.Close()
	if err == nil {
		p.Reset(nil)
		lz4Writers.put(p.Writer)
	}
	p.Writer = nil
	return err
}

// s2Writer writes the stream identifier for an empty stream too (S2's
// Writer writes nothing then), so every stream starts with its magic.
type s2Writer struct {
	*s2.Writer
	w       io.Writer
	written bool
	closed  bool
}

func (p *s2Writer) Write(b []byte) (int, error) {
	p.written = p.written || len(b) > 0
	return p.Writer.Write(b)
}

// ReadFrom hides s2.Writer's, which would bypass Write.
func (p *s2Writer) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{p}, r)
}

func (p *s2Writer) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.Writer.Close()
	if err == nil && !p.written {
		_, err = p.w.Write(s2Magic)
	}
	if err == nil {
		p.Reset(nil)
		s2Writers.put(p.Writer)
	}
	p.Writer = nil
	return err
}

// Magic bytes at the start of each codec's stream.
var (
	zstdMagic   = []byte{0x28, 0xb5, 0x2f, 0xfd}
	lz4Magic    = []byte{0x04, 0x22, 0x4d, 0x18}
	s2Magic     = []byte("\xff\x06\x00\x00S2sTwO")
	snappyMagic = []byte("\xff\x06\x00\x00sNaPpY")
)

// isZstdSkippable says whether b starts a zstd skippable frame
// (magic 0x184D2A50..5F little-endian), which zstd streams may begin with.
func isZstdSkippable(b []byte) bool {
	return len(b) >= 4 && b[0]&0xf0 == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18
}

// Detect names the codec whose stream starts with prefix (at least its
// first 10 bytes, or all of a shorter stream).
func Detect(prefix []byte) (Algorithm, error) {
	switch {
	case bytes.HasPrefix(prefix, zstdMagic) || isZstdSkippable(prefix):
		return Zstd, nil
	case bytes.HasPrefix(prefix, lz4Magic):
		return LZ4, nil
	case bytes.HasPrefix(prefix, s2Magic) || bytes.HasPrefix(prefix, snappyMagic):
		return S2, nil
	}
	return "", fmt.Errorf("%w: starts with %x", ErrFormat, prefix[:min(len(prefix), len(s2Magic))])
}

// NewReader returns a decoder of the stream read from r, whichever codec
// wrote it (see Detect). It reads nothing until the first Read, which
// fails wrapping ErrFormat for a stream of no known codec. An empty stream
// is empty plaintext: the parallel zstd writer of earlier versions wrote
// nothing for an empty file. Close releases the decoder; it does not
// close r.
func NewReader(r io.Reader) (io.ReadCloser, error) {
	return &sniffReader{src: r}, nil
}

// NewUncheckedReader is NewReader for a caller that checks the plaintext
// itself (a CRC32C recorded at sealing): it skips the codecs' own
// checksums of it, S2's CRC32C of every block and zstd's frame checksum.
func NewUncheckedReader(r io.Reader) (io.ReadCloser, error) {
	return &sniffReader{src: r, unchecked: true}, nil
}

// sniffReader picks the decoder on its first Read.
type sniffReader struct {
	src       io.Reader
	unchecked bool
	dec       io.ReadCloser
	err       error
}

func (s *sniffReader) Read(p []byte) (int, error) {
	if s.dec == nil {
		if s.err == nil {
			s.dec, s.err = newDecoder(s.src, s.unchecked)
		}
		if s.err != nil {
			return 0, s.err
		}
	}
	return s.dec.Read(p)
}

func (s *sniffReader) Close() error {
	if s.dec != nil {
		return s.dec.Close()
	}
	return nil
}

func newDecoder(r io.Reader, unchecked bool) (io.ReadCloser, error) {
	prefix := make([]byte, len(s2Magic))
	n, err := io.ReadFull(r, prefix)
	switch {
	case err == io.EOF:
		return io.NopCloser(bytes.NewReader(nil)), nil
	case err == io.ErrUnexpectedEOF:
	case err != nil:
		return nil, err
	}
	prefix = prefix[:n]
	alg, err := Detect(prefix)
	if err != nil {
		return nil, err
	}
	src := io.MultiReader(bytes.NewReader(prefix), r)
	switch alg {
	case LZ4:
		return namedReader{Reader: lz4.NewReader(src), name: "lz4"}, nil
	case S2:
		if unchecked {
			return &s2BlockReader{r: src}, nil
		}
		return namedReader{Reader: s2.NewReader(src, s2.ReaderMaxBlockSize(s2MaxBlock)), name: "s2"}, nil
	}
	dec, err := zstd.NewReader(src,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxDecoderWindow),
		zstd.IgnoreChecksum(unchecked),
	)
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return zstdReader{dec}, nil
}

type zstdReader struct{ *zstd.Decoder }

func (r zstdReader) Read(p []byte) (int, error) {
	n, err := r.Decoder.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("zstd: %w", err)
	}
	return n, err
}

func (r zstdReader) Close() error {
	r.Decoder.Close()
	return nil
}

// namedReader prefixes the codec's name to its errors: lz4 and S2 errors
// do not say which format failed.
type namedReader struct {
	io.Reader
	name string
}

func (r namedReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	if err != nil && err != io.EOF {
		if !strings.HasPrefix(err.Error(), r.name) {
			err = fmt.Errorf("%s: %w", r.name, err)
		}
	}
	return n, err
}

func (namedReader) Close() error { return nil }
