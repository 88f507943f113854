package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/pitr-dev/pitr/wal"
)

// A push seals its segment before the upload starts (a PUT states its
// length). The sealed bytes stay in memory while they fit in
// memSealMax: pgbench WAL seals to about 2.3 MiB, and writing that to the
// spool and reading it back cost the resident pusher 2.4 ms of kernel
// time per segment, 7 % of its CPU (docs/BENCHMARKS.md). Larger ones
// (incompressible WAL seals to 16 MiB) go on to a spool temp file, as
// every push did before; so does every object that could need a
// multipart upload, whose parts are 5 MiB at least. At most memSealSlots
// pushes of a process hold a buffer at once; the others use the spool
// from the start. The buffers stay allocated for the next push, which
// bounds what this adds to a process at memSealSlots × memSealMax.
const (
	memSealMax   = 4 << 20
	memSealSlots = 2
)

// memSeal holds the idle buffers (nil until first used).
var memSeal = func() chan []byte {
	c := make(chan []byte, memSealSlots)
	for range memSealSlots {
		c <- nil
	}
	return c
}()

// memSealSeq makes the names of in-memory seals unique within a process.
var memSealSeq atomic.Int64

// sealOutput is the io.Writer a push seals into: a memory buffer, if a
// slot was free, until it would exceed memSealMax; then a spool temp file
// with the buffered bytes written first.
type sealOutput struct {
	p    *pusher
	name wal.Name
	mem  []byte // memSeal's buffer, goes back to it; nil when no slot was free or once spilled
	file *os.File
	path string // the spool name of this push (records are path + uploadRecordSuffix)
	up   *memBody
}

func (p *pusher) newSealOutput(name wal.Name) (*sealOutput, error) {
	o := &sealOutput{p: p, name: name}
	select {
	case b := <-memSeal:
		if b == nil {
			b = make([]byte, 0, memSealMax)
		}
		o.mem = b[:0]
		// A name in the spool's form, for the record of an upload the
		// store might start (cleanSpool reads it), though no file has it.
		o.path = filepath.Join(p.tmpDir(), fmt.Sprintf("%s.%s.m%d", name, self, memSealSeq.Add(1)))
		return o, nil
	default:
		return o, o.spill()
	}
}

// spill moves the output to a spool temp file.
func (o *sealOutput) spill() error {
	f, err := o.p.createSpoolTemp(o.name)
	if err != nil {
		return err
	}
	o.file, o.path = f, f.Name()
	if len(o.mem) > 0 {
		if _, err := f.Write(o.mem); err != nil {
			return err
		}
	}
	o.giveBack()
	return nil
}

// Write's errors are the spool's, marked local (errLocal).
func (o *sealOutput) Write(b []byte) (int, error) {
	if o.file == nil {
		if len(o.mem)+len(b) <= memSealMax {
			o.mem = append(o.mem, b...)
			return len(b), nil
		}
		if err := o.spill(); err != nil {
			return 0, localErr(fmt.Errorf("spool: %w", err))
		}
	}
	n, err := o.file.Write(b)
	if err != nil {
		err = localErr(fmt.Errorf("spool: %w", err))
	}
	return n, err
}

// body returns the sealed bytes to upload and their length.
func (o *sealOutput) body() (io.Reader, int64, error) {
	if o.file == nil {
		o.up = &memBody{r: bytes.NewReader(o.mem)}
		return o.up, int64(len(o.mem)), nil
	}
	n, err := o.file.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, err
	}
	if _, err := o.file.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	return o.file, n, nil
}

// close removes the temp file, if any, and gives the buffer back.
func (o *sealOutput) close() {
	if o.file != nil {
		o.file.Close()
		os.Remove(o.file.Name())
	}
	if o.up != nil {
		o.up.end()
	}
	o.giveBack()
}

func (o *sealOutput) giveBack() {
	if o.mem != nil {
		memSeal <- o.mem[:0]
		o.mem = nil
	}
}

// memBody is the upload body of an in-memory seal: a bytes.Reader (read,
// read at, seek, length: what the stores and the retry layer ask of a
// body) that fails every read once the push is over. net/http may still
// read a request body after RoundTrip returned (after an early answer
// such as 412), and the buffer goes on to the next push.
type memBody struct {
	mu   sync.Mutex
	r    *bytes.Reader
	done bool
}

var errBodyDone = errors.New("sealed segment read after its push ended")

func (b *memBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, errBodyDone
	}
	return b.r.Read(p)
}

func (b *memBody) ReadAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, errBodyDone
	}
	return b.r.ReadAt(p, off)
}

func (b *memBody) Seek(off int64, whence int) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, errBodyDone
	}
	return b.r.Seek(off, whence)
}

// Len is what is left to read; Size is the whole body.
func (b *memBody) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.r.Len()
}

func (b *memBody) Size() int64 { return b.r.Size() }

func (b *memBody) end() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}
