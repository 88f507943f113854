package compress

import (
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// ParallelBlockSize is the plaintext size of each frame a ParallelWriter
// writes: large enough that frame overhead and lost cross-block matches
// cost well under 1 %, small enough to keep memory bounded. It is also
// S2's largest block, so an S2 frame is one chunk.
const ParallelBlockSize = 4 << 20

// NewParallelWriter compresses blocks of ParallelBlockSize bytes as
// independent streams of alg (zstd or lz4 frames, S2 streams) on up to
// workers goroutines and writes them to w in order. Each codec's
// concatenated streams are one valid stream for its decoders (`zstd -d`,
// `lz4 -d`, `s2d` included), so readers need nothing special. Memory: about
// 2*(workers+1) blocks. Use it where one stream must go faster than one
// core compresses (base backups); Close flushes, it does not close w.
func NewParallelWriter(w io.Writer, alg Algorithm, level, workers int) (io.WriteCloser, error) {
	if err := checkLevel(alg, level); err != nil {
		return nil, err
	}
	if workers < 1 {
		workers = 1
	}
	var encode func(dst, src []byte) []byte
	switch alg {
	case LZ4:
		encode = encodeLZ4
	case S2:
		encode = encodeS2
	default:
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
			zstd.WithEncoderConcurrency(workers),
			zstd.WithWindowSize(ParallelBlockSize),
			zstd.WithEncoderCRC(false),
			zstd.WithZeroFrames(true),
		)
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
		encode = func(dst, src []byte) []byte { return enc.EncodeAll(src, dst) }
	}
	return &parallelWriter{w: w, encode: encode, limit: workers + 1}, nil
}

// Block encoders for lz4 and S2 (safe for concurrent use): a whole stream
// of one block, written by a pooled stream writer into dst.
var (
	lz4Blocks sync.Pool
	s2Blocks  sync.Pool
)

// appendBuffer is an io.Writer appending to a slice.
type appendBuffer struct{ b []byte }

func (a *appendBuffer) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

func encodeLZ4(dst, src []byte) []byte {
	out := &appendBuffer{b: dst[:0]}
	zw, ok := lz4Blocks.Get().(*lz4.Writer)
	if !ok {
		zw = lz4.NewWriter(nil)
		// Writing to memory cannot fail, nor can these options.
		_ = zw.Apply(lz4.BlockSizeOption(lz4.Block4Mb), lz4.ChecksumOption(false), lz4.ConcurrencyOption(1))
	}
	zw.Reset(out)
	_, _ = zw.Write(src)
	_ = zw.Close()
	zw.Reset(nil)
	lz4Blocks.Put(zw)
	return out.b
}

func encodeS2(dst, src []byte) []byte {
	if len(src) == 0 {
		return append(dst[:0], s2Magic...)
	}
	out := &appendBuffer{b: dst[:0]}
	sw, ok := s2Blocks.Get().(*s2.Writer)
	if !ok {
		sw = s2.NewWriter(nil, s2.WriterConcurrency(1), s2.WriterBlockSize(ParallelBlockSize))
	}
	sw.Reset(out)
	_, _ = sw.Write(src)
	_ = sw.Close()
	sw.Reset(nil)
	s2Blocks.Put(sw)
	return out.b
}

type block struct {
	in, out []byte
	done    chan struct{}
}

type parallelWriter struct {
	w      io.Writer
	encode func(dst, src []byte) []byte
	limit  int      // blocks in flight
	cur    []byte   // the block being filled
	queue  []*block // submitted, in order
	blocks int      // submitted in all
	pool   sync.Pool
	err    error
}

func (p *parallelWriter) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n := 0
	for len(b) > 0 {
		if p.cur == nil {
			p.cur = p.getBuf()[:0]
		}
		k := min(len(b), ParallelBlockSize-len(p.cur))
		p.cur = append(p.cur, b[:k]...)
		b, n = b[k:], n+k
		if len(p.cur) == ParallelBlockSize {
			if err := p.submit(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (p *parallelWriter) getBuf() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 0, ParallelBlockSize)
}

func (p *parallelWriter) putBuf(b []byte) {
	b = b[:0]
	p.pool.Put(&b)
}

// submit starts compressing the current block, first writing out finished
// blocks while too many are in flight.
func (p *parallelWriter) submit() error {
	for len(p.queue) >= p.limit {
		if err := p.writeHead(); err != nil {
			return err
		}
	}
	blk := &block{in: p.cur, out: p.getBuf(), done: make(chan struct{})}
	p.cur = nil
	p.queue = append(p.queue, blk)
	p.blocks++
	go func() {
		blk.out = p.encode(blk.out[:0], blk.in)
		close(blk.done)
	}()
	return nil
}

// writeHead waits for the oldest block and writes it.
func (p *parallelWriter) writeHead() error {
	blk := p.queue[0]
	<-blk.done
	p.queue = p.queue[1:]
	_, err := p.w.Write(blk.out)
	p.putBuf(blk.in)
	p.putBuf(blk.out)
	if err != nil {
		p.err = err
	}
	return err
}

// Close compresses what is left and writes every block.
func (p *parallelWriter) Close() error {
	if p.err != nil {
		return p.err
	}
	// An empty stream is still one empty frame, so that every codec's
	// own tool reads it.
	if len(p.cur) > 0 || p.blocks == 0 {
		if p.cur == nil {
			p.cur = p.getBuf()[:0]
		}
		if err := p.submit(); err != nil {
			return err
		}
	}
	for len(p.queue) > 0 {
		if err := p.writeHead(); err != nil {
			return err
		}
	}
	p.err = fmt.Errorf("parallel writer: closed")
	return nil
}
