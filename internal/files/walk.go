package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/restic/chunker"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
)

// walker walks a set's paths in manifest order and writes one manifest
// line per path, storing file content through the pack writer as it goes.
// It holds one directory listing per level of the tree being walked, never
// the whole tree.
type walker struct {
	ctx    context.Context
	log    *zerolog.Logger
	opts   Options
	secret bool // a secrets set: no path in any log line or error
	pw     *repo.PackWriter
	out    io.Writer
	snap   *catalog.Snapshot

	pol     chunker.Pol
	chunker *chunker.Chunker
	buf     []byte

	root    string // the set path being walked
	links   map[devIno]string
	users   map[uint32]string
	groups  map[uint32]string
	noXattr bool // the filesystem refused xattrs once (logged once)
	skipped int64

	// The stat cache (statcache.go): the last snapshot's (nil: none) and
	// this one's (nil: none), files whose times are past cutoff (ns) are
	// not cached, and the files taken from the cache and read.
	cache          *statReader
	next           *statWriter
	cutoff         int64
	reused, readNo int64
}

type devIno struct{ dev, ino uint64 }

func newWalker(ctx context.Context, opts Options, pol chunker.Pol, pw *repo.PackWriter, out io.Writer, snap *catalog.Snapshot) *walker {
	return &walker{ctx: ctx, log: zerolog.Ctx(ctx), opts: opts, secret: opts.Kind == KindSecrets, pw: pw, out: out, snap: snap,
		pol: pol, links: map[devIno]string{}, users: map[uint32]string{}, groups: map[uint32]string{}}
}

// item is one step of a directory's walk: a path's own manifest line, or
// (subtree) the walk of a directory's children. Sorting the items by key,
// a directory's subtree keyed by its name and "/", puts every manifest
// line in byte order of the full path: "b", "b c", then "b/x".
type item struct {
	key     string
	path    string
	subtree bool
}

func sortItems(items []item) {
	slices.SortStableFunc(items, func(a, b item) int { return strings.Compare(a.key, b.key) })
}

func (w *walker) walkRoots(roots []string) error {
	if err := writeLine(w.out, catalog.ManifestHeader{Format: catalog.FormatVersion, Set: w.opts.Name, ID: w.snap.ID, Paths: cleanPaths(w.opts.Paths)}); err != nil {
		return err
	}
	var items []item
	for _, p := range roots {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("file set %s: path %s: %w", w.opts.Name, p, os.NewSyscallError("lstat", err))
		}
		items = append(items, item{key: p, path: p})
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			items = append(items, item{key: dirKey(p), path: p, subtree: true})
		}
	}
	sortItems(items)
	for _, it := range items {
		w.root = rootOf(roots, it.path)
		if err := w.do(it); err != nil {
			return err
		}
	}
	if w.skipped > 0 {
		w.log.Info().Str("set", w.opts.Name).Int64("skipped", w.skipped).Msg("files skipped: sockets, devices and pipes are not snapshotted")
	}
	return nil
}

func cleanPaths(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = path.Clean(p)
	}
	return out
}

func rootOf(roots []string, p string) string {
	for _, r := range roots {
		if p == r || under(p, r) {
			return r
		}
	}
	return p
}

func dirKey(p string) string {
	if strings.HasSuffix(p, "/") {
		return p
	}
	return p + "/"
}

func (w *walker) do(it item) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if it.subtree {
		return w.walkDir(it.path)
	}
	return w.entry(it.path)
}

// walkDir walks the children of directory dir.
func (w *walker) walkDir(dir string) error {
	des, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return nil // gone (or replaced) since it was listed
	case err != nil:
		return fmt.Errorf("read directory %s: %w", w.name(dir), unwrapPath(err))
	}
	items := make([]item, 0, len(des))
	for _, de := range des {
		p := path.Join(dir, de.Name())
		if w.excluded(p) {
			continue
		}
		items = append(items, item{key: de.Name(), path: p})
		if de.IsDir() {
			items = append(items, item{key: de.Name() + "/", path: p, subtree: true})
		}
	}
	sortItems(items)
	for _, it := range items {
		if err := w.do(it); err != nil {
			return err
		}
	}
	return nil
}

// excluded says whether an exclude pattern matches p (see Backup).
func (w *walker) excluded(p string) bool {
	rel := strings.TrimPrefix(strings.TrimPrefix(p, w.root), "/")
	base := path.Base(p)
	for _, pat := range w.opts.Exclude {
		target := rel
		if strings.HasPrefix(pat, "/") {
			target = p
		}
		if ok, _ := path.Match(pat, target); ok {
			return true
		}
		if ok, _ := path.Match(pat, base); ok {
			return true
		}
	}
	return false
}

// name is how p appears in errors and logs: itself, or for a secrets set
// only the set path it is under.
func (w *walker) name(p string) string {
	if !w.secret {
		return p
	}
	return "a path under " + w.root + " (secrets set: file names are not shown)"
}

// unwrapPath drops the path an *os.PathError carries (w.name says where).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// entry writes p's manifest line, storing its content if it is a file.
func (w *walker) entry(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone since its directory was read
		}
		return fmt.Errorf("lstat %s: %w", w.name(p), err)
	}
	e := catalog.ManifestEntry{Path: p}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Type = catalog.TypeDir
		w.snap.Dirs++
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read symlink %s: %w", w.name(p), unwrapPath(err))
		}
		e.Type, e.Target = catalog.TypeSymlink, target
		w.snap.Links++
	case unix.S_IFREG:
		e.Type = catalog.TypeFile
		id := devIno{uint64(st.Dev), st.Ino} //nolint:unconvert // Dev is uint32 on some platforms
		if st.Nlink > 1 {
			if first, ok := w.links[id]; ok {
				e.Link, e.Size = first, st.Size
				break
			}
			w.links[id] = p
		}
		var gone bool
		if !w.reuse(p, &st, &e) {
			var err error
			if gone, err = w.readFile(p, &st, &e); err != nil {
				return err
			}
			w.readNo++
		}
		if gone {
			delete(w.links, id)
			return nil
		}
		if !e.Changed && st.Mtim.Nano() < w.cutoff && st.Ctim.Nano() < w.cutoff {
			w.next.add(&statEntry{path: p, size: e.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
				ino: st.Ino, dev: uint64(st.Dev), chunks: e.Chunks}) //nolint:unconvert // Dev is uint32 on some platforms
		}
		w.snap.Files++
		w.snap.Bytes += e.Size
	default:
		w.skipped++
		if !w.secret {
			w.log.Debug().Str("path", p).Msg("files: not a file, directory or symlink; skipped")
		}
		return nil
	}
	w.meta(&e, &st)
	xa, err := w.xattrs(p)
	if err != nil {
		return err
	}
	e.Xattrs = xa
	return writeLine(w.out, e)
}

// meta fills e's mode, owner and mtime from st.
func (w *walker) meta(e *catalog.ManifestEntry, st *unix.Stat_t) {
	e.Mode = st.Mode & 0o7777
	e.UID, e.GID = st.Uid, st.Gid
	e.User, e.Group = w.userName(st.Uid), w.groupName(st.Gid)
	e.MtimeNS = st.Mtim.Nano()
}

func (w *walker) userName(uid uint32) string {
	if n, ok := w.users[uid]; ok {
		return n
	}
	var n string
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		n = u.Username
	}
	w.users[uid] = n
	return n
}

func (w *walker) groupName(gid uint32) string {
	if n, ok := w.groups[gid]; ok {
		return n
	}
	var n string
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		n = g.Name
	}
	w.groups[gid] = n
	return n
}

// reuse sets e's Chunks and Size from the stat cache, without opening p,
// when p's lstat st is the cached one and the repository has every chunk
// the cache lists.
func (w *walker) reuse(p string, st *unix.Stat_t, e *catalog.ManifestEntry) bool {
	c := w.cache.find(p)
	if c == nil || c.size != st.Size || c.mtime != st.Mtim.Nano() || c.ctime != st.Ctim.Nano() ||
		c.ino != st.Ino || c.dev != uint64(st.Dev) { //nolint:unconvert // Dev is uint32 on some platforms
		return false
	}
	for _, ch := range c.chunks {
		if !w.pw.Has(ch.ID) {
			return false
		}
	}
	e.Chunks, e.Size = c.chunks, c.size
	w.reused++
	progress.Add(w.opts.Progress, c.size)
	return true
}

// readFile stores p's content and sets e's Chunks, Size and Changed, and
// st to the file's state after its last read. A file that changes while
// read (size, mtime or ctime differ before and after, or fewer or more
// bytes than its size) is read again, up to maxReads times; if it never
// holds still, the last read is kept and flagged. gone says p vanished.
func (w *walker) readFile(p string, st *unix.Stat_t, e *catalog.ManifestEntry) (gone bool, err error) {
	for try := 1; ; try++ {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		switch {
		case errors.Is(err, unix.ENOENT):
			return true, nil
		case errors.Is(err, unix.ELOOP):
			return true, nil // replaced by a symlink since it was listed: the next snapshot has it
		case err != nil:
			return false, fmt.Errorf("open %s: %w", w.name(p), err)
		}
		f := os.NewFile(uintptr(fd), p)
		var before, after unix.Stat_t
		if err := unix.Fstat(fd, &before); err != nil {
			f.Close()
			return false, fmt.Errorf("stat %s: %w", w.name(p), err)
		}
		if before.Mode&unix.S_IFMT != unix.S_IFREG {
			f.Close()
			return true, nil
		}
		chunks, n, err := w.chunk(f)
		if err == nil && w.opts.AfterRead != nil {
			w.opts.AfterRead(p, try)
		}
		if err == nil {
			err = unix.Fstat(fd, &after)
		}
		f.Close()
		if err != nil {
			if errors.Is(err, w.ctx.Err()) {
				return false, err
			}
			return false, fmt.Errorf("read %s: %w", w.name(p), unwrapPath(err))
		}
		still := n == after.Size && before.Size == after.Size && before.Mtim == after.Mtim && before.Ctim == after.Ctim
		*st = after
		e.Chunks, e.Size = chunks, n
		if still {
			return false, nil
		}
		if try == maxReads {
			e.Changed = true
			w.snap.Changed++
			if w.secret {
				w.log.Warn().Str("set", w.opts.Name).Int("reads", try).Msg("a file changed while it was read; stored as last read and flagged changed")
			} else {
				w.log.Warn().Str("path", p).Int("reads", try).Msg("file changed while it was read; stored as last read and flagged changed")
			}
			return false, nil
		}
		if !w.secret {
			w.log.Debug().Str("path", p).Int("read", try).Msg("file changed while it was read; reading it again")
		}
	}
}

// chunk splits f into chunks, stores those the repository lacks, and
// returns their references and the bytes read.
func (w *walker) chunk(f *os.File) ([]catalog.ChunkRef, int64, error) {
	if w.chunker == nil {
		w.chunker = chunker.NewWithBoundaries(f, w.pol, minChunk, maxChunk)
		w.chunker.SetAverageBits(averageBits)
		w.buf = make([]byte, maxChunk)
	} else {
		w.chunker.ResetWithBoundaries(f, w.pol, minChunk, maxChunk)
		w.chunker.SetAverageBits(averageBits)
	}
	var refs []catalog.ChunkRef
	var n int64
	for {
		if err := w.ctx.Err(); err != nil {
			return nil, 0, err
		}
		c, err := w.chunker.Next(w.buf)
		if err == io.EOF {
			return refs, n, nil
		}
		if err != nil {
			return nil, 0, err
		}
		id := w.opts.DedupKey.ChunkID(c.Data)
		if _, err := w.pw.Add(id, c.Data); err != nil {
			return nil, 0, err
		}
		refs = append(refs, catalog.ChunkRef{ID: id, SHA256: chunkSum(c.Data), Size: int64(len(c.Data))})
		n += int64(len(c.Data))
		progress.Add(w.opts.Progress, int64(len(c.Data)))
	}
}

// xattrs returns p's extended attributes (nil if none). A filesystem
// without them is logged once at debug level and skipped.
func (w *walker) xattrs(p string) (map[string][]byte, error) {
	if w.noXattr {
		return nil, nil
	}
	var names []byte
	for size := 1024; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			w.noXattr = true
			w.log.Debug().Str("set", w.opts.Name).Msg("files: the filesystem has no extended attributes; none recorded")
			return nil, nil
		}
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list xattrs of %s: %w", w.name(p), err)
		}
		names = buf[:n]
		break
	}
	var out map[string][]byte
	for name := range strings.SplitSeq(string(names), "\x00") {
		if name == "" {
			continue
		}
		val, err := lgetxattr(p, name)
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOENT) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("read xattr of %s: %w", w.name(p), err)
		}
		if out == nil {
			out = map[string][]byte{}
		}
		out[name] = val
	}
	return out, nil
}

func lgetxattr(p, name string) ([]byte, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
