package restore

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"syscall"
)

// fileWriters creates, writes and closes the restored files on goroutines
// of their own, each file wholly on one of them, while the extractor goes
// on reading the archive. Creating a file and copying its contents into the
// page cache are most of a restore's system time, and on the extractor's
// goroutine they bounded the restore to one core. On ext4 without a journal,
// right after a tree of as many files was removed, creating one costs a scan
// past every inode deleted in the last minute (recently_deleted): 15-20 % of
// a pgbench scale-100 restore's samples here.
type fileWriters struct {
	x      *extractor
	queues []chan fileJob
	free   chan []byte // buffers not in a job
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error // the first failure of a worker
}

// fileJob is a buffer of a file's contents, or (buf nil) its end.
type fileJob struct {
	rf  *restoredFile
	buf []byte
	err error // on the end: the extractor failed this file
}

// restoredFile is one file in the works, touched only by its worker once
// begun.
type restoredFile struct {
	hdr  *tar.Header
	name string
	q    chan fileJob
	w    *fileWriter // nil until created
	err  error       // the worker's first failure for this file
}

// writerBufsPerWorker is how many extractBuf buffers each worker may have
// waiting or being written.
const writerBufsPerWorker = 2

func startFileWriters(x *extractor) *fileWriters {
	n := min(max(runtime.GOMAXPROCS(0), 2), 4)
	fw := &fileWriters{x: x, free: make(chan []byte, n*writerBufsPerWorker+2)}
	for range cap(fw.free) {
		fw.free <- make([]byte, extractBuf)
	}
	for range n {
		q := make(chan fileJob, 64)
		fw.queues = append(fw.queues, q)
		fw.wg.Add(1)
		go func() {
			defer fw.wg.Done()
			for j := range q {
				fw.run(j)
			}
		}()
	}
	return fw
}

// failed returns the first failure of a worker so far.
func (fw *fileWriters) failed() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.err
}

func (fw *fileWriters) setErr(err error) {
	fw.mu.Lock()
	if fw.err == nil {
		fw.err = err
	}
	fw.mu.Unlock()
}

// copy hands the contents of the file hdr names, read from r, to the
// least busy worker, and then its end. It returns the bytes read.
func (fw *fileWriters) copy(hdr *tar.Header, name string, r io.Reader) (int64, error) {
	rf := &restoredFile{hdr: hdr, name: name, q: fw.queues[0]}
	for _, q := range fw.queues[1:] {
		if len(q) < len(rf.q) {
			rf.q = q
		}
	}
	var n int64
	err := fw.failed()
	for err == nil {
		buf := <-fw.free
		m, rerr := io.ReadFull(r, buf)
		n += int64(m)
		if m > 0 {
			rf.q <- fileJob{rf: rf, buf: buf[:m]}
		} else {
			fw.free <- buf
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		err = rerr
		if err == nil {
			err = fw.failed()
		}
	}
	if err == nil && n != hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	rf.q <- fileJob{rf: rf, err: err}
	return n, err
}

func (fw *fileWriters) run(j fileJob) {
	rf := j.rf
	if j.buf != nil {
		if rf.err == nil && rf.w == nil {
			rf.err = fw.create(rf)
		}
		if rf.err == nil {
			if err := rf.w.write(j.buf); err != nil {
				rf.err = fw.x.failed(rf.hdr.Name, err)
			}
		}
		fw.free <- j.buf[:cap(j.buf)]
		return
	}
	// The end of the file: the extractor reports its own failure.
	if j.err == nil && rf.err == nil && rf.w == nil {
		rf.err = fw.create(rf) // an empty file
	}
	if rf.w == nil {
		if j.err == nil && rf.err != nil {
			fw.setErr(rf.err)
		}
		return
	}
	f := rf.w.f
	err := rf.err
	if j.err == nil && err == nil {
		rf.w.end()
		if e := f.Chmod(fs.FileMode(rf.hdr.Mode) & 0o600); e != nil {
			err = fw.x.failed(rf.hdr.Name, e)
		}
		if own := fw.x.opts.Owner; err == nil && own != nil {
			if e := f.Chown(own.UID, own.GID); e != nil {
				err = fw.x.failed(rf.hdr.Name, e)
			}
		}
	}
	if e := f.Close(); err == nil && e != nil {
		err = fw.x.failed(rf.hdr.Name, e)
	}
	if j.err == nil && err == nil {
		if e := fw.x.root.Chtimes(rf.name, accessTime(rf.hdr), rf.hdr.ModTime); e != nil {
			err = fw.x.failed(rf.hdr.Name, e)
		}
	}
	if j.err == nil && err != nil {
		fw.setErr(err)
	}
}

// create makes rf's file: never an existing one, never through a link.
func (fw *fileWriters) create(rf *restoredFile) error {
	f, err := fw.x.root.OpenFile(rf.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fw.x.refuse(rf.hdr.Name, "exists already (duplicate entry, or the directory was not empty)")
	}
	if err != nil {
		return fw.x.failed(rf.hdr.Name, err)
	}
	rf.w = &fileWriter{f: f, wb: fw.x.wb}
	return nil
}

// wait waits for every worker, and returns the first failure.
func (fw *fileWriters) wait() error {
	for _, q := range fw.queues {
		close(q)
	}
	fw.wg.Wait()
	return fw.failed()
}
