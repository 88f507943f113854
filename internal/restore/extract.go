package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pitr-dev/pitr/internal/pgserver"
)

// Owner is who restored files belong to.
type Owner struct{ UID, GID int }

// ExtractOptions configures Extract. The zero value is usable.
type ExtractOptions struct {
	// Owner, when set, gets every entry Extract creates (we must be root).
	Owner *Owner
	// Name is the archive's name in error messages, e.g. "base.tar".
	Name string
}

// ExtractStats counts what Extract wrote.
type ExtractStats struct {
	Files int   // regular files
	Bytes int64 // their contents
}

// Limits on entry names: Linux's PATH_MAX and NAME_MAX.
const (
	maxEntryPath = 4096
	maxEntryElem = 255
	maxLinkHops  = 40 // as the kernel's ELOOP limit
)

// Extract unpacks one tar stream from BASE_BACKUP (base.tar, or <oid>.tar
// of a tablespace) into dir, which should be empty. Then it reads r to EOF
// even after the tar's end, so a checksumming reader (envelope.Codec.Open)
// gets to check the whole stream: a stream from PostgreSQL before 15 has no
// end-of-archive blocks, so a cut at a file boundary looks like a complete
// tar.
//
// The archive is not trusted. Extract refuses absolute names, ".."
// elements, hard links, devices, FIFOs and sparse files, symbolic links
// that are absolute
// or resolve outside dir, and writing through a symbolic link; it creates
// files with O_EXCL, so nothing existing is overwritten or followed, and
// it works inside an os.Root as a second line of defence. PostgreSQL
// writes no symbolic links when asked for a tablespace map, but other
// symbolic links in the data directory are archived as links.
//
// Directories get mode 0700, files their archived permission bits within
// 0600 (PostgreSQL's modes without group access) and their archived mtime.
// Nothing is fsynced: PostgreSQL syncs the data directory when it starts
// recovery from a backup.
func Extract(ctx context.Context, r io.Reader, dir string, opts ExtractOptions) (ExtractStats, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("extract %s: %w", archiveName(opts), err)
	}
	defer root.Close()
	x := &extractor{root: root, opts: opts, dirs: map[string]bool{"": true}, files: map[string]bool{}, wb: startWriteback()}
	defer x.wb.stop()
	x.fw = startFileWriters(x)
	err = x.extract(ctx, tar.NewReader(r))
	if werr := x.fw.wait(); err == nil {
		err = werr
	}
	if err != nil {
		_ = x.checkLinks() // remove links leading out even when failing
		return x.stats, err
	}
	if err := x.checkLinks(); err != nil {
		return x.stats, err
	}
	if err := x.setDirTimes(); err != nil {
		return x.stats, err
	}
	if _, err := io.Copy(io.Discard, ctxReader{ctx, r}); err != nil {
		return x.stats, fmt.Errorf("read %s: %w", archiveName(opts), err)
	}
	return x.stats, nil
}

type extractor struct {
	root  *os.Root
	opts  ExtractOptions
	stats ExtractStats
	dirs  map[string]bool // checked to be real directories
	files map[string]bool // regular files handed to the writers
	links []string        // symbolic links created, checked by finish
	times []dirTime       // applied last: creating children changes them
	wb    *writeback
	fw    *fileWriters
}

type dirTime struct {
	name string
	hdr  *tar.Header
}

// refuse is the error for an entry Extract will not unpack.
func (x *extractor) refuse(name, format string, args ...any) error {
	in := ""
	if x.opts.Name != "" {
		in = " in " + x.opts.Name
	}
	return fmt.Errorf("refusing %s%s: %s", quoteEntry(name), in, fmt.Sprintf(format, args...))
}

// failed is the error for an entry that could not be written.
func (x *extractor) failed(name string, err error) error {
	return fmt.Errorf("extract %s from %s: %w", quoteEntry(name), archiveName(x.opts), err)
}

func archiveName(opts ExtractOptions) string {
	if opts.Name == "" {
		return "archive"
	}
	return opts.Name
}

// quoteEntry quotes an entry name for messages, shortening hostile ones.
func quoteEntry(name string) string {
	if len(name) > 100 {
		return strconv.Quote(name[:100]) + "..."
	}
	return strconv.Quote(name)
}

func (x *extractor) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX defaults; archive/tar applies them
	}
	name, err := cleanEntryName(hdr.Name)
	if err != nil {
		return x.refuse(hdr.Name, "%v", err)
	}
	if name == "" {
		if hdr.Typeflag == tar.TypeDir {
			return nil // "./": dir itself, which the caller made
		}
		return x.refuse(hdr.Name, "names the target directory itself")
	}
	for k := range hdr.PAXRecords {
		// archive/tar expands holes itself: a few bytes could fill the disk.
		if strings.HasPrefix(k, "GNU.sparse.") {
			return x.refuse(hdr.Name, "sparse file")
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(hdr, name)
	case tar.TypeReg:
		return x.file(ctx, hdr, name, r)
	case tar.TypeSymlink:
		return x.symlink(hdr, name)
	case tar.TypeLink:
		return x.refuse(hdr.Name, "hard link to %s (hard links are not restored)", quoteEntry(hdr.Linkname))
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return x.refuse(hdr.Name, "device or FIFO")
	default:
		return x.refuse(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
	}
}

// cleanEntryName returns name relative to the target directory, "/"
// separated, without "." or empty elements ("" for the directory itself).
func cleanEntryName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty name")
	case len(name) > maxEntryPath:
		return "", fmt.Errorf("name longer than %d bytes", maxEntryPath)
	case strings.IndexByte(name, 0) >= 0:
		return "", errors.New("name contains NUL")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("absolute path")
	}
	var elems []string
	for e := range strings.SplitSeq(name, "/") {
		switch {
		case e == "..":
			return "", errors.New("path leaves the target directory")
		case e == "" || e == ".":
			continue
		case len(e) > maxEntryElem:
			return "", fmt.Errorf("name element longer than %d bytes", maxEntryElem)
		}
		elems = append(elems, e)
	}
	return strings.Join(elems, "/"), nil
}

// parents makes sure every directory above name is a real directory,
// creating missing ones, and never passes through a symbolic link.
func (x *extractor) parents(entry, name string) error {
	dir := path.Dir(name)
	if dir == "." || x.dirs[dir] {
		return nil
	}
	p := ""
	for e := range strings.SplitSeq(dir, "/") {
		p = path.Join(p, e)
		if x.dirs[p] {
			continue
		}
		if x.files[p] { // perhaps not created yet
			return x.refuse(entry, "parent %s is not a directory", quoteEntry(p))
		}
		fi, err := x.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(p, 0o700); err != nil {
				return x.failed(entry, err)
			}
			if err := x.chown(p); err != nil {
				return x.failed(entry, err)
			}
		case err != nil:
			return x.failed(entry, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return x.refuse(entry, "parent %s is a symbolic link", quoteEntry(p))
		case !fi.IsDir():
			return x.refuse(entry, "parent %s is not a directory", quoteEntry(p))
		}
		x.dirs[p] = true
	}
	return nil
}

func (x *extractor) dir(hdr *tar.Header, name string) error {
	if err := x.parents(hdr.Name, name); err != nil {
		return err
	}
	if x.files[name] {
		return x.refuse(hdr.Name, "exists already and is not a directory")
	}
	if !x.dirs[name] {
		fi, err := x.root.Lstat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(name, 0o700); err != nil {
				return x.failed(hdr.Name, err)
			}
		case err != nil:
			return x.failed(hdr.Name, err)
		case !fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0:
			return x.refuse(hdr.Name, "exists already and is not a directory")
		}
		x.dirs[name] = true
	}
	// The owner must be able to enter and write: always 0700.
	if err := x.root.Chmod(name, 0o700); err != nil {
		return x.failed(hdr.Name, err)
	}
	if err := x.chown(name); err != nil {
		return x.failed(hdr.Name, err)
	}
	x.times = append(x.times, dirTime{name, hdr})
	return nil
}

func (x *extractor) file(ctx context.Context, hdr *tar.Header, name string, r io.Reader) error {
	if err := x.parents(hdr.Name, name); err != nil {
		return err
	}
	if x.files[name] {
		return x.refuse(hdr.Name, "exists already (duplicate entry, or the directory was not empty)")
	}
	x.files[name] = true
	n, err := x.fw.copy(hdr, name, ctxReader{ctx, r})
	x.stats.Bytes += n
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == x.fw.failed() {
			return err // a worker's, naming its own file
		}
		return x.failed(hdr.Name, err)
	}
	x.stats.Files++
	return nil
}

func (x *extractor) symlink(hdr *tar.Header, name string) error {
	target := hdr.Linkname
	switch {
	case target == "":
		return x.refuse(hdr.Name, "symbolic link without a target")
	case len(target) > maxEntryPath || strings.IndexByte(target, 0) >= 0:
		return x.refuse(hdr.Name, "symbolic link target is not a path")
	case filepath.IsAbs(target):
		return x.refuse(hdr.Name, "symbolic link to absolute path %s (only links inside the backup are restored)", quoteEntry(target))
	}
	if to := path.Join(path.Dir(name), target); to == ".." || strings.HasPrefix(to, "../") {
		return x.refuse(hdr.Name, "symbolic link to %s leaves the target directory", quoteEntry(target))
	}
	if err := x.parents(hdr.Name, name); err != nil {
		return err
	}
	if x.files[name] {
		return x.refuse(hdr.Name, "exists already (duplicate entry, or the directory was not empty)")
	}
	if err := x.root.Symlink(target, name); errors.Is(err, fs.ErrExist) {
		return x.refuse(hdr.Name, "exists already (duplicate entry, or the directory was not empty)")
	} else if err != nil {
		return x.failed(hdr.Name, err)
	}
	if x.opts.Owner != nil {
		if err := x.root.Lchown(name, x.opts.Owner.UID, x.opts.Owner.GID); err != nil {
			return x.failed(hdr.Name, err)
		}
	}
	x.links = append(x.links, name)
	return nil
}

func (x *extractor) extract(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", archiveName(x.opts), err)
		}
		if err := x.entry(ctx, hdr, tr); err != nil {
			return err
		}
	}
}

// checkLinks checks the symbolic links against the final tree, where one
// link may lead through another (a link to "." and one to "that/.."). It
// removes every link that leads out and reports the first.
func (x *extractor) checkLinks() error {
	var first error
	for _, link := range x.links {
		escapes, err := x.escapes(link)
		if err == nil && !escapes {
			continue
		}
		if rerr := x.root.Remove(link); rerr != nil && first == nil {
			first = x.failed(link, rerr)
		}
		if first == nil && err != nil {
			first = x.failed(link, err)
		} else if first == nil {
			first = x.refuse(link, "symbolic link resolves outside the target directory")
		}
	}
	return first
}

// setDirTimes sets the archived mtimes of directories, once nothing is
// created in them any more.
func (x *extractor) setDirTimes() error {
	for _, dt := range slices.Backward(x.times) {
		if err := x.root.Chtimes(dt.name, accessTime(dt.hdr), dt.hdr.ModTime); err != nil {
			return x.failed(dt.hdr.Name, err)
		}
	}
	return nil
}

// escapes resolves name inside the root as the kernel would and reports
// whether that leaves the root (or loops). A missing component ends the
// resolution as it is: a dangling link inside the root is harmless.
func (x *extractor) escapes(name string) (bool, error) {
	var resolved []string // real directories (or missing names) so far
	pending := strings.Split(name, "/")
	for hops := 0; len(pending) > 0; {
		e := pending[0]
		pending = pending[1:]
		switch e {
		case "", ".":
			continue
		case "..":
			if len(resolved) == 0 {
				return true, nil
			}
			resolved = resolved[:len(resolved)-1]
			continue
		}
		p := path.Join(append(resolved, e)...)
		fi, err := x.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			resolved = append(resolved, e)
			continue
		}
		if err != nil {
			return false, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = append(resolved, e)
			continue
		}
		if hops++; hops > maxLinkHops {
			return true, nil
		}
		target, err := x.root.Readlink(p)
		if err != nil {
			return false, err
		}
		if strings.HasPrefix(target, "/") {
			return true, nil
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return false, nil
}

func (x *extractor) chown(name string) error {
	if x.opts.Owner == nil {
		return nil
	}
	return x.root.Lchown(name, x.opts.Owner.UID, x.opts.Owner.GID)
}

func accessTime(hdr *tar.Header) time.Time {
	if !hdr.AccessTime.IsZero() {
		return hdr.AccessTime
	}
	return hdr.ModTime
}

// extractBuf is the most bytes a file's write(2) carries: the decoder's
// buffer size. 1 MiB writes looked no different after a sync, but right
// after another restore's tree was removed (as bench/backup.sh runs the
// tools) the kernel's copy into the page cache took 56 % of the samples
// and a restore 6-9 s instead of 3-4 (256 KiB and 128 KiB alike).
const extractBuf = 256 << 10

// writeBehindEvery is how many bytes of a file are written before their
// writeback is started.
const writeBehindEvery = 8 << 20

// writeback starts the writeback of restored files' pages on a goroutine
// of its own (sync_file_range SYNC_FILE_RANGE_WRITE: start writing those
// pages to disk, do not wait for them), so the disk works while the rest
// of the backup is unpacked and the syncfs that ends the restore has
// little left to wait for. Without it the whole backup sat dirty in the
// page cache until then; called inline, sync_file_range blocks whenever
// the device's queue is full, and the extraction with it. Durability
// still comes from that syncfs (or fsync): this only starts the I/O
// sooner, and a request that finds the queue of requests full is dropped.
// Each request holds a duplicate of the file's descriptor, so the file is
// closed as usual.
type writeback struct {
	reqs chan writebackReq
	done chan struct{}
}

type writebackReq struct {
	fd       int
	off, len int64
}

func startWriteback() *writeback {
	wb := &writeback{reqs: make(chan writebackReq, 64), done: make(chan struct{})}
	go func() {
		defer close(wb.done)
		for r := range wb.reqs {
			// Errors here are not the restore's: syncfs or fsync reports
			// every failed write.
			_ = unix.SyncFileRange(r.fd, r.off, r.len, unix.SYNC_FILE_RANGE_WRITE)
			_ = unix.Close(r.fd)
		}
	}()
	return wb
}

func (wb *writeback) start(f *os.File, off, n int64) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	select {
	case wb.reqs <- writebackReq{fd: fd, off: off, len: n}:
	default:
		_ = unix.Close(fd)
	}
}

func (wb *writeback) stop() {
	close(wb.reqs)
	<-wb.done
}

// fileWriter writes one restored file, starting its writeback every
// writeBehindEvery bytes and at its end.
type fileWriter struct {
	f       *os.File
	wb      *writeback
	off     int64 // bytes written
	started int64 // bytes whose writeback was started
}

// write writes b, starting the writeback of what was written every
// writeBehindEvery bytes. The caller fills whole buffers (*os.File's
// ReadFrom, which io.Copy would use, copies in 32 KiB), so a 1 GiB
// relation segment takes 4096 writes instead of 32768.
func (w *fileWriter) write(b []byte) error {
	n, err := w.f.Write(b)
	w.off += int64(n)
	if err != nil {
		return err
	}
	if w.off-w.started >= writeBehindEvery {
		w.wb.start(w.f, w.started, w.off-w.started)
		w.started = w.off
	}
	return nil
}

// end starts the writeback of the rest.
func (w *fileWriter) end() {
	if w.off > w.started {
		w.wb.start(w.f, w.started, w.off-w.started)
	}
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// tablespaceMap is the file a backup taken with TABLESPACE_MAP carries in
// base.tar: where recovery recreates pg_tblspc/<oid> symbolic links.
const tablespaceMap = "tablespace_map"

type tablespaceLink struct {
	oid  uint32
	path string
}

// RewriteTablespaceMap points the tablespaces in mapping (by OID) to new
// locations in dataDir's tablespace_map, which recovery reads to create the
// pg_tblspc links. Every OID must be in the file and every new path
// absolute. The file keeps its other lines, mode and owner. A data
// directory without tablespace_map is fine only for an empty mapping.
func RewriteTablespaceMap(dataDir string, mapping map[uint32]string) error {
	p := filepath.Join(dataDir, tablespaceMap)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) && len(mapping) == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rewrite tablespace_map: %w", err)
	}
	info, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("rewrite tablespace_map: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("rewrite tablespace_map: %s is not a regular file", p)
	}
	links, err := parseTablespaceMap(data)
	if err != nil {
		return err
	}
	for oid, to := range mapping {
		if !filepath.IsAbs(to) || strings.IndexByte(to, 0) >= 0 {
			return fmt.Errorf("rewrite tablespace_map: tablespace %d: %q is not an absolute path", oid, to)
		}
		i := slices.IndexFunc(links, func(l tablespaceLink) bool { return l.oid == oid })
		if i < 0 {
			return fmt.Errorf("rewrite tablespace_map: tablespace %d is not in the backup's tablespace_map", oid)
		}
		links[i].path = filepath.Clean(to)
	}
	if err := pgserver.WriteFile(p, formatTablespaceMap(links), info.Mode().Perm(), info); err != nil {
		return fmt.Errorf("rewrite tablespace_map: %w", err)
	}
	return nil
}

// parseTablespaceMap reads "<oid> <path>" lines as PostgreSQL's
// read_tablespace_map does: a backslash escapes the next byte (PostgreSQL
// escapes backslashes, CR and LF in paths), unescaped CR and LF end lines,
// empty lines are skipped, the path starts after the first space and may
// contain more.
func parseTablespaceMap(data []byte) ([]tablespaceLink, error) {
	var links []tablespaceLink
	var line []byte
	escaped := false
	for _, c := range data {
		switch {
		case escaped:
			line = append(line, c)
			escaped = false
		case c == '\\':
			escaped = true
		case c == '\n' || c == '\r':
			if len(line) == 0 {
				continue
			}
			oid, rest, ok := bytes.Cut(line, []byte(" "))
			n, err := strconv.ParseUint(string(oid), 10, 32)
			if !ok || err != nil || len(rest) == 0 {
				return nil, fmt.Errorf("tablespace_map: bad line %q", line)
			}
			links = append(links, tablespaceLink{uint32(n), string(rest)})
			line = line[:0]
		default:
			line = append(line, c)
		}
	}
	if len(line) != 0 || escaped {
		return nil, errors.New("tablespace_map: last line is incomplete")
	}
	return links, nil
}

// formatTablespaceMap writes lines as PostgreSQL's do_pg_backup_start does.
func formatTablespaceMap(links []tablespaceLink) []byte {
	esc := strings.NewReplacer(`\`, `\\`, "\n", "\\\n", "\r", "\\\r")
	var b bytes.Buffer
	for _, l := range links {
		fmt.Fprintf(&b, "%d %s\n", l.oid, esc.Replace(l.path))
	}
	return b.Bytes()
}
