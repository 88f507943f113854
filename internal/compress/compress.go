// Package compress wraps zstd (github.com/klauspost/compress/zstd) as
// streaming writers and readers tuned for many short-lived processes: one
// goroutine per stream and small windows, so that eight concurrent uploads in
// one wal-push stay well under 64 MiB of memory.
package compress

import (
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// DefaultLevel is zstd's fastest level: on WAL it stores about 0.11 of the
// input at the speed of lz4 (see docs/BENCHMARKS.md); uploading costs more
// than compressing, so higher levels rarely pay.
const DefaultLevel = 1

// windowSize bounds the encoder's and decoder's history buffers. WAL records
// rarely repeat further apart than this, and it keeps memory per stream small.
const windowSize = 2 << 20

// maxDecoderWindow refuses frames that ask for more history than any pitr
// writer uses (protects restore from hostile objects that demand gigabytes).
const maxDecoderWindow = 64 << 20

// NewWriter returns a zstd encoder writing to w at level 1 (fastest) to
// 4 (best). Close flushes the frame; it does not close w. Encoders are
// reused after Close: a long-running process (wal-receive seals a chunk
// every second, or every commit when synchronous) would otherwise turn
// megabytes of encoder state into garbage per object.
func NewWriter(w io.Writer, level int) (io.WriteCloser, error) {
	if level < 1 || level > 4 {
		return nil, fmt.Errorf("zstd level %d out of range 1..4", level)
	}
	if enc, ok := encoders[level].Get().(*zstd.Encoder); ok {
		enc.Reset(w)
		return &pooledWriter{Encoder: enc, level: level}, nil
	}
	enc, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(windowSize),
		zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderCRC(true),
	)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &pooledWriter{Encoder: enc, level: level}, nil
}

var encoders [5]sync.Pool // by level

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
		encoders[p.level].Put(p.Encoder)
	}
	p.Encoder = nil
	return err
}

// NewReader returns a zstd decoder reading from r. Close releases it; it does
// not close r.
func NewReader(r io.Reader) (io.ReadCloser, error) {
	dec, err := zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxDecoderWindow),
	)
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return readCloser{dec}, nil
}

type readCloser struct{ *zstd.Decoder }

func (r readCloser) Close() error {
	r.Decoder.Close()
	return nil
}
