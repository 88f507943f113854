package compress

import (
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// ParallelBlockSize is the plaintext size of each frame a ParallelWriter
// writes: large enough that frame overhead and lost cross-block matches
// cost well under 1 %, small enough to keep memory bounded.
const ParallelBlockSize = 4 << 20

// NewParallelWriter compresses blocks of ParallelBlockSize bytes as
// independent zstd frames on up to workers goroutines and writes them to w
// in order. Concatenated frames are one valid zstd stream for every decoder
// (`zstd -d` included), so readers need nothing special. Memory: about
// 2*(workers+1) blocks. Use it where one stream must go faster than one
// core compresses (base backups); Close flushes, it does not close w.
func NewParallelWriter(w io.Writer, level, workers int) (io.WriteCloser, error) {
	if level < 1 || level > 4 {
		return nil, fmt.Errorf("zstd level %d out of range 1..4", level)
	}
	if workers < 1 {
		workers = 1
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
		zstd.WithEncoderConcurrency(workers),
		zstd.WithWindowSize(ParallelBlockSize),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &parallelWriter{w: w, enc: enc, limit: workers + 1}, nil
}

type block struct {
	in, out []byte
	done    chan struct{}
}

type parallelWriter struct {
	w     io.Writer
	enc   *zstd.Encoder
	limit int      // blocks in flight
	cur   []byte   // the block being filled
	queue []*block // submitted, in order
	pool  sync.Pool
	err   error
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
	go func() {
		blk.out = p.enc.EncodeAll(blk.in, blk.out[:0])
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
	if len(p.cur) > 0 {
		if err := p.submit(); err != nil {
			return err
		}
	}
	for len(p.queue) > 0 {
		if err := p.writeHead(); err != nil {
			return err
		}
	}
	p.err = fmt.Errorf("zstd parallel writer: closed")
	return nil
}
