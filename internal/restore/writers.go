package restore

import (
	"io"
	"os"
	"runtime"
	"sync"
)

// writers copies restored files' contents into the page cache on several
// goroutines, while the extractor goes on reading the archive. That copy
// (the kernel's copy_folio_from_iter) is most of a restore's CPU when the
// page cache is full and each new page must first be reclaimed: 49-55 %
// of the samples in a pgbench scale-100 restore here. On the extractor's
// goroutine alone it bounded the restore to one core, while pgBackRest
// (process-max 2) copies on two.
type writers struct {
	jobs chan writeJob
	free chan []byte // buffers not in a job
	wg   sync.WaitGroup
	wb   *writeback

	mu  sync.Mutex
	err error // the first failed write or close
}

type writeJob struct {
	pf  *pendingFile
	off int64
	buf []byte
}

// pendingFile is one file being written. The goroutine that finishes its
// last write after the extractor sealed it (or the extractor, when no write
// is left) closes it.
type pendingFile struct {
	f    *os.File
	fail func(error) error // wraps an error with the entry's name
	mode os.FileMode
	own  *Owner

	mu       sync.Mutex
	inFlight int
	sealed   bool
	err      error
	written  int64 // bytes written so far
	end      int64 // the highest offset written
	started  int64 // bytes whose writeback was started
	startOff int64 // where the next writeback starts
}

// writerBufs is how many extractBuf buffers are in flight per worker:
// one being written, one being filled.
const writerBufs = 2

func startWriters(wb *writeback) *writers {
	n := min(runtime.GOMAXPROCS(0), 4)
	w := &writers{jobs: make(chan writeJob, n), free: make(chan []byte, n*writerBufs+1), wb: wb}
	for range cap(w.free) {
		w.free <- make([]byte, extractBuf)
	}
	for range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := range w.jobs {
				w.write(j)
			}
		}()
	}
	return w
}

// failed returns the first error of a write or close so far.
func (w *writers) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writers) setErr(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *writers) write(j writeJob) {
	pf := j.pf
	pf.mu.Lock()
	failed := pf.err != nil
	pf.mu.Unlock()
	var n int
	var err error
	if !failed {
		n, err = pf.f.WriteAt(j.buf, j.off)
	}
	w.free <- j.buf[:cap(j.buf)]
	pf.mu.Lock()
	if err != nil && pf.err == nil {
		pf.err = err
	}
	pf.written += int64(n)
	pf.end = max(pf.end, j.off+int64(n))
	if pf.written-pf.started >= writeBehindEvery {
		w.wb.start(pf.f, pf.startOff, pf.end-pf.startOff)
		pf.started, pf.startOff = pf.written, pf.end
	}
	pf.inFlight--
	last := pf.sealed && pf.inFlight == 0
	pf.mu.Unlock()
	if last {
		w.finish(pf)
	}
}

// finish starts the rest of pf's writeback, sets its mode and owner, and
// closes it; its times are set once every file is written.
func (w *writers) finish(pf *pendingFile) {
	err := pf.err
	if err == nil && pf.end > pf.startOff {
		w.wb.start(pf.f, pf.startOff, pf.end-pf.startOff)
	}
	if err == nil {
		err = pf.f.Chmod(pf.mode)
	}
	if err == nil && pf.own != nil {
		err = pf.f.Chown(pf.own.UID, pf.own.GID)
	}
	if cerr := pf.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.setErr(pf.fail(err))
	}
}

// copyFile reads r to its end into buffers that the workers write to pf
// at their offsets, and returns the bytes read. The caller seals pf then,
// whatever happened, so that it is closed once its last write is done.
func (w *writers) copyFile(pf *pendingFile, r io.Reader) (int64, error) {
	var off int64
	for {
		if err := w.failed(); err != nil {
			return off, err
		}
		buf := <-w.free
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			pf.mu.Lock()
			pf.inFlight++
			pf.mu.Unlock()
			w.jobs <- writeJob{pf: pf, off: off, buf: buf[:n]}
			off += int64(n)
		} else {
			w.free <- buf
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return off, nil
		default:
			return off, err
		}
	}
}

// seal says that every write of pf was handed over; err, if not nil, fails
// it: its pending writes are skipped and it is closed without its mode and
// owner.
func (w *writers) seal(pf *pendingFile, err error) {
	pf.mu.Lock()
	if err != nil && pf.err == nil {
		pf.err = err
	}
	pf.sealed = true
	last := pf.inFlight == 0
	pf.mu.Unlock()
	if last {
		w.finish(pf)
	}
}

// wait waits for every write and close, and returns the first error.
func (w *writers) wait() error {
	close(w.jobs)
	w.wg.Wait()
	return w.failed()
}
