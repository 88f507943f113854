package files

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	Snapshot *catalog.Snapshot
	// Target is the directory to restore into: each manifest path P goes
	// to Target/P (Target/srv/app/uploads/a.png). It is created if absent.
	Target string
	// Include, when not empty, restores only the paths matching one of
	// these path.Match patterns, or under a directory that matches, and
	// the directories above them.
	Include []string
	// Exclude, when not empty, leaves out the paths matching one of these
	// patterns (same syntax), and everything under a directory that
	// matches: what the target holds there stays as it is, also with
	// Force (pitr app restore --keep-settings).
	Exclude []string
	// Force replaces existing files, symbolic links and hard links at the
	// target (never following a symbolic link found there); without it,
	// Restore refuses to start when any path it would write exists.
	Force bool
	// Workers is how many files are written at once; 0 means 8 (each
	// holds one chunk in memory: at most 8 MiB).
	Workers int
	// Progress hears the file bytes written, against the total to
	// restore; nil shows nothing.
	Progress progress.Meter
}

// RestoreStats counts what Restore did.
type RestoreStats struct {
	Files     int64 `json:"files"` // regular files written (not hard links)
	Bytes     int64 `json:"bytes"` // their content
	Dirs      int64 `json:"dirs"`
	Symlinks  int64 `json:"symlinks"`
	Hardlinks int64 `json:"hardlinks"`
	Replaced  int64 `json:"replaced"` // existing paths replaced (Force)
	// OwnersNotRestored counts paths left owned by the restoring user:
	// not root, or the system refused.
	OwnersNotRestored int64 `json:"owners_not_restored"`
	// XattrsNotRestored counts extended attributes the target refused.
	XattrsNotRestored int64         `json:"xattrs_not_restored"`
	Duration          time.Duration `json:"duration_ns"`
}

// geteuid is os.Geteuid, replaced in tests to restore as another user.
var geteuid = os.Geteuid

// tempPrefix starts the names of files being written; a restore removes
// its own, and a crashed one leaves them beside the files (never under
// a restored name).
const tempPrefix = ".pitr-restore-"

// Restore restores opts.Snapshot into opts.Target (layout: each manifest
// path P at Target/P, see RestoreOptions). The manifest is verified whole, and every entry
// checked (paths, links, chunks in the index, what exists at the target),
// before anything is written; each file is written to a temporary name,
// its chunks checked against their SHA-256 and its size against the
// manifest, fsynced and then moved into place, so a file under its own
// name is always complete. It logs counts, never a path or content.
func Restore(ctx context.Context, r *repo.Repo, opts RestoreOptions) (RestoreStats, error) {
	start := time.Now()
	s := opts.Snapshot
	if err := CheckPatterns(opts.Include); err != nil {
		return RestoreStats{}, err
	}
	if err := CheckPatterns(opts.Exclude); err != nil {
		return RestoreStats{}, err
	}
	target, err := filepath.Abs(opts.Target)
	if err != nil {
		return RestoreStats{}, fmt.Errorf("restore target: %w", err)
	}
	man, err := r.OpenManifest(ctx, s)
	if err != nil {
		return RestoreStats{}, err
	}
	defer man.Close()
	if err := os.MkdirAll(target, 0o700); err != nil {
		return RestoreStats{}, fmt.Errorf("restore target: %w", err)
	}
	root, err := os.OpenRoot(target)
	if err != nil {
		return RestoreStats{}, fmt.Errorf("restore target: %w", err)
	}
	defer root.Close()
	x := &restorer{r: r, snap: s, opts: opts, target: target, root: root, asRoot: geteuid() == 0,
		euid: uint32(geteuid()), egid: uint32(os.Getegid()),
		nonDirs: map[string]bool{}, needDirs: map[string]bool{}, linkTargets: map[string]*catalog.ManifestEntry{},
		restoredAs: map[string]string{}, dirs: map[string]bool{"": true}, need: map[string]packNeed{}}
	if x.opts.Workers <= 0 {
		x.opts.Workers = 8
	}
	if err := man.Scan(ctx, x.check); err != nil {
		return x.stats, err
	}
	if len(opts.Include) > 0 && x.selected == 0 {
		return x.stats, fmt.Errorf("--include: no path of snapshot %s of %s matches", s.ID, s.Set)
	}
	if x.ix, err = r.LoadChunkIndex(ctx, nil); err != nil {
		return x.stats, err
	}
	if err := man.Scan(ctx, x.checkTarget); err != nil {
		return x.stats, err
	}
	progress.SetTotal(opts.Progress, x.wantBytes)
	spool, err := newPackSpool(r.Store(), x.need, target)
	if err != nil {
		return x.stats, err
	}
	defer spool.Close()
	x.r = r.WithStore(spool)
	if err := x.restore(ctx, man); err != nil {
		return x.stats, err
	}
	if err := man.Scan(ctx, x.finishDir); err != nil {
		return x.stats, err
	}
	if err := x.syncDirs(); err != nil {
		return x.stats, err
	}
	x.stats.Duration = time.Since(start)
	log := zerolog.Ctx(ctx)
	if n := x.stats.OwnersNotRestored; n > 0 {
		why := "the system refused"
		if !x.asRoot {
			why = "not running as root"
		}
		log.Warn().Int64("paths", n).Str("reason", why).Msg("owners not restored")
	}
	if n := x.stats.XattrsNotRestored; n > 0 {
		log.Warn().Int64("xattrs", n).Msg("extended attributes not restored: the target refused them")
	}
	log.Info().Str("set", s.Set).Str("snapshot", s.ID).Int64("files", x.stats.Files).Int64("bytes", x.stats.Bytes).
		Dur("took", x.stats.Duration.Round(time.Millisecond)).Msg("files restored")
	return x.stats, nil
}

type restorer struct {
	r      *repo.Repo
	snap   *catalog.Snapshot
	opts   RestoreOptions
	target string
	root   *os.Root
	ix     *repo.ChunkIndex
	asRoot bool
	euid   uint32
	egid   uint32

	// check's state: nonDirs holds symlinks and files that a later path
	// could still name as a parent (see check), needDirs the directories
	// above included paths, linkTargets the earlier paths the included
	// hard links name (their entries once checkTarget has seen them).
	nonDirs     map[string]bool
	pruneAt     int
	needDirs    map[string]bool
	linkTargets map[string]*catalog.ManifestEntry
	selected    int64
	lastParent  string              // checkTarget: the last parent found to be real directories
	need        map[string]packNeed // checkChunks: by pack, what the restore reads of it
	wantBytes   int64               // checkChunks: file bytes to write, for Progress

	dirs       map[string]bool   // relative directories known to be real, created or checked
	restoredAs map[string]string // link target path -> relative path restored with its content
	mu         sync.Mutex        // stats, while files are written at once
	stats      RestoreStats
}

// quotePath quotes a manifest path for messages, shortening hostile ones.
func quotePath(p string) string {
	if len(p) > 200 {
		return strconv.Quote(p[:200]) + "..."
	}
	return strconv.Quote(p)
}

func refuse(e *catalog.ManifestEntry, format string, args ...any) error {
	return fmt.Errorf("refusing manifest path %s: %s", quotePath(e.Path), fmt.Sprintf(format, args...))
}

// Limits on paths: Linux's PATH_MAX and NAME_MAX.
const (
	maxPath = 4096
	maxName = 255
)

// checkPath accepts an absolute, clean, slash-separated path without NUL
// and without empty, "." or ".." elements.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > maxPath:
		return fmt.Errorf("longer than %d bytes", maxPath)
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("contains NUL")
	case p[0] != '/':
		return errors.New("not an absolute path")
	case p == "/":
		return nil
	}
	for _, name := range strings.Split(p[1:], "/") {
		switch {
		case name == "" || name == ".":
			return errors.New("not a clean path (empty or . element)")
		case name == "..":
			return errors.New("contains .. (would leave the target)")
		case len(name) > maxName:
			return fmt.Errorf("a name longer than %d bytes", maxName)
		}
	}
	return nil
}

// rel is where p goes under the target, relative ("" for "/").
func rel(p string) string { return strings.TrimPrefix(p, "/") }

// relDir is the parent of a relative path ("" at the top).
func relDir(name string) string {
	d := path.Dir(name)
	if d == "." {
		return ""
	}
	return d
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// check is the first pass: every entry well formed, no path under a
// symlink or file of the snapshot, hard links to earlier paths; it
// collects what the include patterns select.
func (x *restorer) check(e *catalog.ManifestEntry) error {
	if err := checkPath(e.Path); err != nil {
		return refuse(e, "%v", err)
	}
	if e.Mode&^0o7777 != 0 {
		return refuse(e, "mode %o has bits beyond 07777", e.Mode)
	}
	for k := range e.Xattrs {
		if k == "" || strings.IndexByte(k, 0) >= 0 {
			return refuse(e, "bad extended attribute name")
		}
	}
	switch e.Type {
	case catalog.TypeDir:
	case catalog.TypeSymlink:
		if e.Target == "" || strings.IndexByte(e.Target, 0) >= 0 || len(e.Target) > maxPath {
			return refuse(e, "symbolic link target empty, too long or with NUL")
		}
	case catalog.TypeFile:
		if e.Link != "" {
			if err := checkPath(e.Link); err != nil {
				return refuse(e, "hard link target: %v", err)
			}
			if e.Link >= e.Path {
				return refuse(e, "hard link to %s, which is not an earlier path", quotePath(e.Link))
			}
			if len(e.Chunks) > 0 {
				return refuse(e, "hard link with content of its own")
			}
			break
		}
		var sum int64
		for _, c := range e.Chunks {
			if !isHex64(c.ID) || !isHex64(c.SHA256) || c.Size <= 0 {
				return refuse(e, "bad chunk reference")
			}
			sum += c.Size
		}
		if sum != e.Size {
			return refuse(e, "chunks hold %d bytes, size says %d", sum, e.Size)
		}
	default:
		return refuse(e, "unknown type %q", e.Type)
	}
	if e.Path == "/" && e.Type != catalog.TypeDir {
		return refuse(e, "names the target directory itself")
	}
	// A path under a symlink or file of the snapshot would be written
	// through it. Paths are sorted, so every path under X lies between
	// X+"/" and X+"0": X can be forgotten once the scan passes X+"0".
	for a := path.Dir(e.Path); a != "/"; a = path.Dir(a) {
		if x.nonDirs[a] {
			return refuse(e, "its parent %s is not a directory in the snapshot", quotePath(a))
		}
	}
	if e.Type != catalog.TypeDir {
		x.nonDirs[e.Path] = true
	}
	if len(x.nonDirs) > x.pruneAt+1024 {
		for p := range x.nonDirs {
			if p+"0" <= e.Path {
				delete(x.nonDirs, p)
			}
		}
		x.pruneAt = len(x.nonDirs)
	}
	if !included(x.opts.Include, e.Path) {
		return nil
	}
	x.selected++
	if len(x.opts.Include) > 0 {
		for a := path.Dir(e.Path); a != "/"; a = path.Dir(a) {
			if x.needDirs[a] {
				break
			}
			x.needDirs[a] = true
		}
	}
	if e.Link != "" {
		x.linkTargets[e.Link] = nil
	}
	return nil
}

// wanted says whether e is restored: included and not excluded, or a
// directory above an included path.
func (x *restorer) wanted(e *catalog.ManifestEntry) bool {
	if len(x.opts.Exclude) > 0 && included(x.opts.Exclude, e.Path) {
		return false
	}
	return included(x.opts.Include, e.Path) || (e.Type == catalog.TypeDir && x.needDirs[e.Path])
}

// checkTarget is the second pass: hard links name earlier files, every
// chunk is in the index, and nothing at the target is in the way (unless
// Force). Nothing is written yet.
func (x *restorer) checkTarget(e *catalog.ManifestEntry) error {
	if _, ok := x.linkTargets[e.Path]; ok && e.Type == catalog.TypeFile && e.Link == "" {
		x.linkTargets[e.Path] = e
		if !x.wanted(e) {
			if err := x.checkChunks(e); err != nil {
				return err
			}
		}
	}
	if !x.wanted(e) {
		return nil
	}
	if e.Link != "" && x.linkTargets[e.Link] == nil {
		return refuse(e, "hard link to %s, which is not an earlier file of the snapshot", quotePath(e.Link))
	}
	if err := x.checkChunks(e); err != nil {
		return err
	}
	return x.checkExisting(e)
}

func (x *restorer) checkChunks(e *catalog.ManifestEntry) error {
	for _, c := range e.Chunks {
		ref, ok := x.ix.Lookup(c.ID)
		if !ok {
			return fmt.Errorf("restore %s: chunk %.16s: %w", quotePath(e.Path), c.ID, repo.ErrChunkMissing)
		}
		if ref.Size != c.Size {
			return fmt.Errorf("restore %s: chunk %.16s: index says %d bytes, manifest %d", quotePath(e.Path), c.ID, ref.Size, c.Size)
		}
		x.wantBytes += c.Size
		n := x.need[ref.Pack]
		n.blobs++
		n.bytes += ref.Length
		x.need[ref.Pack] = n
	}
	return nil
}

// ErrExists is wrapped when a path to restore exists at the target and
// Force is not set.
var ErrExists = errors.New("exists at the target")

func (x *restorer) exists(name string) error {
	return fmt.Errorf("%s %w (use --force to replace what is there)", quotePath(filepath.Join(x.target, name)), ErrExists)
}

// checkExisting looks at what the target holds at e's path and above,
// never following a symbolic link found there.
func (x *restorer) checkExisting(e *catalog.ManifestEntry) error {
	name := rel(e.Path)
	if name == "" {
		return nil
	}
	if parent := relDir(name); parent != "" && parent != x.lastParent {
		p := ""
		for elem := range strings.SplitSeq(parent, "/") {
			p = path.Join(p, elem)
			fi, err := x.root.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return fmt.Errorf("restore target: %w", err)
			}
			if !fi.IsDir() {
				if !x.opts.Force {
					return x.exists(p)
				}
				// Replaced by a directory (counted at its own path):
				// nothing below it exists.
				return nil
			}
		}
		x.lastParent = parent
	}
	fi, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore target: %w", err)
	}
	switch {
	case e.Type == catalog.TypeDir && fi.IsDir():
		return nil
	case e.Type != catalog.TypeDir && fi.IsDir():
		return fmt.Errorf("%s is a directory at the target, the snapshot has a %s there; remove it first", quotePath(filepath.Join(x.target, name)), e.Type)
	case !x.opts.Force:
		return x.exists(name)
	}
	x.stats.Replaced++
	return nil
}

// pendingLink is a hard link, made once every file is written.
type pendingLink struct {
	name string // relative
	e    *catalog.ManifestEntry
}

// restore is the third pass: directories and symbolic links in order,
// files on Workers goroutines, then hard links.
func (x *restorer) restore(ctx context.Context, man *repo.Manifest) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(x.opts.Workers)
	var links []pendingLink
	err := man.Scan(gctx, func(e *catalog.ManifestEntry) error {
		if !x.wanted(e) {
			return nil
		}
		name := rel(e.Path)
		switch {
		case e.Type == catalog.TypeDir:
			if err := x.ensureDir(name, 0o700); err != nil {
				return fmt.Errorf("restore %s: %w", quotePath(e.Path), err)
			}
			x.count(func(s *RestoreStats) { s.Dirs++ })
			return nil
		case e.Type == catalog.TypeSymlink:
			if err := x.ensureDir(relDir(name), 0o755); err != nil {
				return fmt.Errorf("restore %s: %w", quotePath(e.Path), err)
			}
			return x.symlink(name, e)
		case e.Link != "":
			links = append(links, pendingLink{name, e})
			return nil
		}
		if err := x.ensureDir(relDir(name), 0o755); err != nil {
			return fmt.Errorf("restore %s: %w", quotePath(e.Path), err)
		}
		if _, ok := x.linkTargets[e.Path]; ok {
			x.restoredAs[e.Path] = name
		}
		g.Go(func() error { return x.file(gctx, name, e, e) })
		return nil
	})
	if werr := g.Wait(); werr != nil {
		err = werr // a worker's error, not the scan's "context canceled"
	}
	if err != nil {
		return err
	}
	for _, l := range links {
		if err := x.ensureDir(relDir(l.name), 0o755); err != nil {
			return fmt.Errorf("restore %s: %w", quotePath(l.e.Path), err)
		}
		if old, ok := x.restoredAs[l.e.Link]; ok {
			if err := x.hardlink(old, l.name, l.e); err != nil {
				return err
			}
			continue
		}
		// The file it links to is not restored (--include): this path
		// gets the content, and later links to the same file link here.
		t := x.linkTargets[l.e.Link]
		if err := x.file(ctx, l.name, l.e, t); err != nil {
			return err
		}
		x.restoredAs[l.e.Link] = l.name
	}
	return nil
}

// ensureDir makes name and the directories above it real directories,
// creating missing ones with perm (a directory of the manifest gets its
// own mode in the last pass), and never passes through a symbolic link:
// one found at the target is an error, or with Force replaced.
func (x *restorer) ensureDir(name string, perm os.FileMode) error {
	if x.dirs[name] {
		return nil
	}
	if err := x.ensureDir(relDir(name), 0o755); err != nil {
		return err
	}
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(name, perm); err != nil {
			return err
		}
	case err != nil:
		return err
	case fi.IsDir():
	case !x.opts.Force:
		return x.exists(name)
	default:
		// Remove acts on a symbolic link itself, never on its target.
		if err := x.root.Remove(name); err != nil {
			return err
		}
		if err := x.root.Mkdir(name, perm); err != nil {
			return err
		}
	}
	x.dirs[name] = true
	return nil
}

func tempName(name string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return path.Join(relDir(name), tempPrefix+hex.EncodeToString(b[:]))
}

// place moves the finished temporary tmp to name: without Force with a
// hard link, which fails if name exists, so nothing is ever replaced;
// with Force with a rename, which replaces a file or symbolic link
// without following it. tmp is gone afterwards, whatever happened.
func (x *restorer) place(tmp, name string) error {
	if !x.opts.Force {
		err := x.root.Link(tmp, name)
		if err == nil {
			return x.root.Remove(tmp)
		}
		if errors.Is(err, fs.ErrExist) {
			_ = x.root.Remove(tmp)
			return x.exists(name)
		}
		// A file system without hard links: check, then rename.
		if _, serr := x.root.Lstat(name); !errors.Is(serr, fs.ErrNotExist) {
			_ = x.root.Remove(tmp)
			return x.exists(name)
		}
	}
	if err := x.root.Rename(tmp, name); err != nil {
		_ = x.root.Remove(tmp)
		return err
	}
	return nil
}

// file writes e's path name with the content and metadata of src (e
// itself, or the file a hard link names when that file is not restored).
func (x *restorer) file(ctx context.Context, name string, e, src *catalog.ManifestEntry) error {
	fail := func(err error) error { return fmt.Errorf("restore %s: %w", quotePath(e.Path), err) }
	tmp := tempName(name)
	f, err := x.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fail(err)
	}
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = x.root.Remove(tmp)
		}
	}()
	var n int64
	for _, run := range x.runs(src.Chunks) {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := x.r.ReadBlobRun(ctx, run.refs, x.snap.Encrypted, run.sums, func(i int, data []byte) error {
			if _, err := f.Write(data); err != nil {
				return err
			}
			n += int64(len(data))
			progress.Add(x.opts.Progress, int64(len(data)))
			return nil
		})
		if err != nil {
			return fail(err)
		}
	}
	if n != src.Size {
		return fail(fmt.Errorf("%d bytes restored, manifest says %d", n, src.Size))
	}
	owned, ownerOK := x.chown(src, f.Chown)
	mode := src.Mode
	if !owned {
		mode &^= 0o6000 // no setuid or setgid file for the wrong owner
	}
	if err := f.Chmod(fileMode(mode)); err != nil {
		return fail(err)
	}
	xf := x.xattrs(src, func(k string, v []byte) error { return unix.Fsetxattr(int(f.Fd()), k, v, 0) })
	mt := time.Unix(0, src.MtimeNS)
	if err := x.root.Chtimes(tmp, mt, mt); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	done = true
	if err := x.place(tmp, name); err != nil {
		return fail(err)
	}
	x.count(func(s *RestoreStats) {
		s.Files++
		s.Bytes += n
		s.XattrsNotRestored += xf
		if !ownerOK {
			s.OwnersNotRestored++
		}
	})
	return nil
}

// chunkRun is chunks of a file read with one request.
type chunkRun struct {
	refs []repo.BlobRef
	sums []string
}

// runs splits chunks into runs that lie in order in one pack
// (repo.ReadBlobRun). checkTarget found each chunk in the index.
func (x *restorer) runs(chunks []catalog.ChunkRef) []chunkRun {
	var out []chunkRun
	for _, c := range chunks {
		ref, _ := x.ix.Lookup(c.ID)
		if k := len(out) - 1; k >= 0 {
			prev := out[k].refs[len(out[k].refs)-1]
			end := prev.Offset + prev.Length
			if ref.Pack == prev.Pack && ref.Offset >= end && ref.Offset-end <= repo.MaxRunGap && len(out[k].refs) < maxRun {
				out[k].refs = append(out[k].refs, ref)
				out[k].sums = append(out[k].sums, c.SHA256)
				continue
			}
		}
		out = append(out, chunkRun{refs: []repo.BlobRef{ref}, sums: []string{c.SHA256}})
	}
	return out
}

// maxRun bounds the chunks of one request (about 64 MiB of a large file
// at 1 MiB a chunk).
const maxRun = 64

// chown restores e's owner with do when running as root. owned says the
// file now has e's owner as root set it (setuid bits may stay); ok is
// false when e's owner could not be restored.
func (x *restorer) chown(e *catalog.ManifestEntry, do func(uid, gid int) error) (owned, ok bool) {
	if !x.asRoot {
		return false, e.UID == x.euid && e.GID == x.egid
	}
	if err := do(int(e.UID), int(e.GID)); err != nil {
		return false, false
	}
	return true, true
}

// xattrs sets e's extended attributes with set, in name order, and
// returns how many the target refused.
func (x *restorer) xattrs(e *catalog.ManifestEntry, set func(k string, v []byte) error) int64 {
	keys := make([]string, 0, len(e.Xattrs))
	for k := range e.Xattrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var failed int64
	for _, k := range keys {
		if set(k, e.Xattrs[k]) != nil {
			failed++
		}
	}
	return failed
}

// count updates the stats; files are written on several goroutines.
func (x *restorer) count(f func(s *RestoreStats)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	f(&x.stats)
}

// fileMode converts permission, setuid, setgid and sticky bits.
func fileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// symlink creates a symbolic link with the stored target, never
// resolving it, under a temporary name, then places it.
func (x *restorer) symlink(name string, e *catalog.ManifestEntry) error {
	fail := func(err error) error { return fmt.Errorf("restore %s: %w", quotePath(e.Path), err) }
	tmp := tempName(name)
	if err := x.root.Symlink(e.Target, tmp); err != nil {
		return fail(err)
	}
	// The directories above tmp are real ones (ensureDir), and each call
	// acts on the link itself.
	full := filepath.Join(x.target, tmp)
	_, ownerOK := x.chown(e, func(uid, gid int) error { return os.Lchown(full, uid, gid) })
	xf := x.xattrs(e, func(k string, v []byte) error { return unix.Lsetxattr(full, k, v, 0) })
	ts := unix.NsecToTimespec(e.MtimeNS)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, full, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		_ = x.root.Remove(tmp)
		return fail(err)
	}
	if err := x.place(tmp, name); err != nil {
		return fail(err)
	}
	x.count(func(s *RestoreStats) {
		s.Symlinks++
		s.XattrsNotRestored += xf
		if !ownerOK {
			s.OwnersNotRestored++
		}
	})
	return nil
}

// hardlink links name to the restored file old.
func (x *restorer) hardlink(old, name string, e *catalog.ManifestEntry) error {
	tmp := tempName(name)
	if err := x.root.Link(old, tmp); err != nil {
		return fmt.Errorf("restore %s: hard link: %w", quotePath(e.Path), err)
	}
	if err := x.place(tmp, name); err != nil {
		return fmt.Errorf("restore %s: %w", quotePath(e.Path), err)
	}
	x.stats.Hardlinks++
	return nil
}

// finishDir is the last pass: a directory's owner, mode, extended
// attributes and mtime, once nothing more is written into it.
func (x *restorer) finishDir(e *catalog.ManifestEntry) error {
	if e.Type != catalog.TypeDir || e.Path == "/" || !x.wanted(e) {
		return nil
	}
	name := rel(e.Path)
	fail := func(err error) error { return fmt.Errorf("restore %s: %w", quotePath(e.Path), err) }
	f, err := x.root.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	_, ownerOK := x.chown(e, f.Chown)
	if err := f.Chmod(fileMode(e.Mode)); err != nil {
		return fail(err)
	}
	xf := x.xattrs(e, func(k string, v []byte) error { return unix.Fsetxattr(int(f.Fd()), k, v, 0) })
	mt := time.Unix(0, e.MtimeNS)
	if err := x.root.Chtimes(name, mt, mt); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	delete(x.dirs, name) // synced
	x.stats.XattrsNotRestored += xf
	if !ownerOK {
		x.stats.OwnersNotRestored++
	}
	return nil
}

// syncDirs fsyncs the directories not in the manifest that restore
// created or wrote into, so every rename into them is durable.
func (x *restorer) syncDirs() error {
	names := make([]string, 0, len(x.dirs))
	for name := range x.dirs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		open := name
		if open == "" {
			open = "."
		}
		f, err := x.root.OpenFile(open, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return fmt.Errorf("sync restored directory: %w", err)
		}
		err = f.Sync()
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("sync restored directory: %w", err)
		}
	}
	return nil
}
