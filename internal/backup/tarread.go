package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/progress"
)

// Reading the data directory for a direct backup: a few readers fill
// buffers of the files ahead of the tar writer, which writes them in order,
// so that the tar stream never waits on one file's syscalls. Files are cut
// into chunks; at most readWindow chunks are held at once (memory:
// readWindow * readChunk).
const (
	readChunk   = 1 << 20
	readWindow  = 32
	readWorkers = 4
)

// openFile is a regular file shared by the chunks that read it.
type openFile struct {
	once sync.Once
	f    *os.File
	err  error
}

func (o *openFile) open(path string) (*os.File, error) {
	o.once.Do(func() { o.f, o.err = os.Open(path) })
	return o.f, o.err
}

// chunk is one read of a file: bytes [off, off+len(buf)).
type chunk struct {
	e     *entry
	off   int64
	buf   []byte // readChunk capacity, from the free list
	n     int    // bytes wanted
	short bool   // the file ended early: buf is padded with zeros
	err   error  // open or read failure; fs.ErrNotExist on open: the file went away
	done  chan struct{}
}

// tarStats counts what writeTar stored.
type tarStats struct {
	files, shrunk, vanished int
	bytes                   int64
}

// writeTar writes entries as a tar archive (with its end blocks) into w and
// hands each file's stored size and SHA-256 to add, in order. A regular file
// is stored with the size lstat gave; if it shrank meanwhile, its end is
// zeros, and if it grew, the rest is left out (WAL replay from the backup's
// start repairs both, as for BASE_BACKUP). A file removed before it could be
// opened is left out. An entry marked last (pg_control) is read only once
// everything before it is written, and one with fill is asked for its
// contents only then.
func writeTar(ctx context.Context, w io.Writer, entries []*entry, pc *pageChecker, meter progress.Meter, add func(e *entry, size int64, sum []byte)) (tarStats, error) {
	g, ctx := errgroup.WithContext(ctx)
	free := make(chan []byte, readWindow)
	for range readWindow {
		free <- make([]byte, readChunk)
	}
	order := make(chan *chunk, readWindow)
	jobs := make(chan *chunk, readWindow)
	files := map[*entry]*openFile{}
	for _, e := range entries {
		if e.regular() && e.content == nil && e.fill == nil && !e.last {
			files[e] = &openFile{}
		}
	}
	g.Go(func() error { // dispatch, in tar order
		defer close(order)
		defer close(jobs)
		for _, e := range entries {
			if files[e] == nil {
				continue
			}
			for off := int64(0); off == 0 || off < e.size; off += readChunk {
				var buf []byte
				select {
				case buf = <-free:
				case <-ctx.Done():
					return ctx.Err()
				}
				c := &chunk{e: e, off: off, buf: buf, n: int(min(readChunk, e.size-off)), done: make(chan struct{})}
				order <- c // never blocks: at most readWindow chunks exist
				jobs <- c
			}
		}
		return nil
	})
	for range readWorkers {
		g.Go(func() error {
			for c := range jobs {
				readChunkOf(c, files[c.e], pc)
			}
			return nil
		})
	}
	var st tarStats
	g.Go(func() error {
		tw := tar.NewWriter(w)
		for _, e := range entries {
			var err error
			switch {
			case e.content != nil:
				err = writeContent(tw, e, e.content, add)
			case e.fill != nil:
				var b []byte
				if b, err = e.fill(); err == nil {
					e.mtime = time.Now()
					err = writeContent(tw, e, b, add)
				}
			case e.last:
				err = writeWhole(tw, e, add)
			case files[e] != nil:
				err = writeFile(ctx, tw, e, order, free, meter, &st, add)
				if o := files[e]; err == nil && o.f != nil { // all its chunks were read
					o.f.Close()
					o.f = nil
				}
			default:
				err = tw.WriteHeader(header(e))
			}
			if err != nil {
				return err
			}
		}
		if err := tw.Close(); err != nil {
			return fmt.Errorf("end tar: %w", err)
		}
		return nil
	})
	err := g.Wait()
	for _, o := range files { // what was opened but not reached, after a failure
		if o.f != nil {
			o.f.Close()
		}
	}
	return st, err
}

// readChunkOf reads c, opening the file on its first chunk, and checks its
// pages if pc is set.
func readChunkOf(c *chunk, o *openFile, pc *pageChecker) {
	defer close(c.done)
	f, err := o.open(c.e.path)
	if err != nil {
		c.err = err
		return
	}
	b := c.buf[:c.n]
	n, err := f.ReadAt(b, c.off)
	if err == io.EOF || (err == nil && n < len(b)) {
		clear(b[n:])
		c.short, err = true, nil
	}
	if err != nil {
		c.err = fmt.Errorf("read %s: %w", c.e.path, err)
		return
	}
	if pc != nil && c.e.verify {
		c.err = pc.check(f, b, c.off, c.e.seg, c.e.path)
	}
}

// writeFile writes one file from its chunks, which arrive on order.
func writeFile(ctx context.Context, tw *tar.Writer, e *entry, order <-chan *chunk, free chan<- []byte, meter progress.Meter, st *tarStats, add func(*entry, int64, []byte)) error {
	h := newFileHash(manifestAlgorithm)
	var written int64
	skip, short := false, false
	for first := true; first || written < e.size; first = false {
		var c *chunk
		select {
		case c = <-order:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.e != e {
			return fmt.Errorf("tar writer out of step at %s", e.path)
		}
		err := c.err
		if first && errors.Is(err, fs.ErrNotExist) {
			skip = true // removed meanwhile: like the server, no member at all
		} else if err != nil && !skip {
			return fmt.Errorf("backup file %s: %w", e.path, err)
		}
		if first && !skip {
			if err := tw.WriteHeader(header(e)); err != nil {
				return err
			}
		}
		if !skip {
			b := c.buf[:c.n]
			h.Write(b)
			if _, err := tw.Write(b); err != nil {
				return err
			}
			progress.Add(meter, int64(len(b)))
			short = short || c.short
		}
		written += int64(c.n)
		free <- c.buf
		if e.size == 0 {
			break
		}
	}
	switch {
	case skip:
		st.vanished++
		return nil
	case short:
		st.shrunk++
	}
	st.files++
	st.bytes += e.size
	add(e, e.size, h.Sum(nil))
	return nil
}

// writeWhole reads a small file now and writes it (pg_control, after everything else).
func writeWhole(tw *tar.Writer, e *entry, add func(*entry, int64, []byte)) error {
	b, err := os.ReadFile(e.path)
	if err != nil {
		return fmt.Errorf("backup file %s: %w", e.path, err)
	}
	fi, err := os.Lstat(e.path)
	if err != nil {
		return fmt.Errorf("backup file %s: %w", e.path, err)
	}
	e.mode, e.size, e.mtime = fi.Mode(), int64(len(b)), fi.ModTime()
	return writeContent(tw, e, b, add)
}

// writeContent writes a member whose bytes are at hand.
func writeContent(tw *tar.Writer, e *entry, b []byte, add func(*entry, int64, []byte)) error {
	e.size = int64(len(b))
	if err := tw.WriteHeader(header(e)); err != nil {
		return err
	}
	if _, err := tw.Write(b); err != nil {
		return err
	}
	h := newFileHash(manifestAlgorithm)
	h.Write(b)
	add(e, e.size, h.Sum(nil))
	return nil
}

// header is e's tar header as the server writes it: directories (and
// symlinks) with a trailing slash, times in whole seconds.
func header(e *entry) *tar.Header {
	h := &tar.Header{Name: e.name, Mode: int64(e.mode.Perm()), ModTime: e.mtime.Truncate(time.Second)}
	switch {
	case e.mode.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
	case e.mode&fs.ModeSymlink != 0:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
	default:
		h.Typeflag, h.Size = tar.TypeReg, e.size
	}
	return h
}
