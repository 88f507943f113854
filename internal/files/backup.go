package files

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/restic/chunker"
	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
)

// Kinds of file sets.
const (
	KindUploads = "uploads"
	KindSecrets = "secrets"
)

// Chunk sizes: restic's chunker between these bounds, cutting where the
// low averageBits bits of the Rabin fingerprint are zero (about 1 MiB
// apart past the minimum).
const (
	minChunk    = 512 << 10
	maxChunk    = 8 << 20
	averageBits = 20
)

// maxReads is how often a file that changes while read is read.
const maxReads = 3

// ErrChanged is wrapped by Backup's error when files kept changing while
// they were read: the snapshot is stored (those files as last read, and
// flagged Changed in the manifest), but the run did not capture them
// whole.
var ErrChanged = errors.New("files changed while they were read")

// Options configures Backup.
type Options struct {
	Repo *repo.Repo
	// The set: Name (catalog.ValidSetName), Kind (KindUploads or
	// KindSecrets), Paths (absolute) and Exclude (see Backup).
	Name    string
	Kind    string
	Paths   []string
	Exclude []string
	// DedupKey is the repository's dedup key (LoadOrCreateDedupKey).
	DedupKey DedupKey
	// CacheDir is the local index cache ("" for none); see
	// repo.Repo.LoadChunkIndexCached. The set's stat cache is kept there
	// too (statcache.go): files unchanged since the set's last snapshot
	// from this host are not read again.
	CacheDir string
	// NoCache reads every file, ignoring the stat cache (a new one is
	// still written).
	NoCache     bool
	PitrVersion string
	Now         func() time.Time
	// AfterRead, if set, is called after each read of a file's content,
	// before the file is checked for changes (tests: change it there).
	AfterRead func(path string, try int)
	// Progress hears the bytes of the files scanned (read, or known from
	// the stat cache); the total is not known beforehand. nil: nothing.
	Progress progress.Meter

	// trustRecent caches files however recently they changed (tests: their
	// files are all new); see racyWindow.
	trustRecent bool
}

// Backup takes a snapshot of one file set and returns its entry once it
// is stored. See doc.go for the order of writes and what a crash leaves.
//
// Exclude patterns are path.Match patterns, matched against each path
// relative to the set path it is under ("cache/tmp"), against its base
// name ("*.tmp"), and, for a pattern starting with "/", against the
// absolute path; a matching directory is left out with everything in it.
//
// The error wraps ErrChanged (with the entry returned, the snapshot
// stored) when files never held still while read.
func Backup(ctx context.Context, opts Options) (*catalog.Snapshot, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	roots, err := checkOptions(&opts)
	if err != nil {
		return nil, err
	}
	r := opts.Repo
	if opts.Kind == KindSecrets && !r.Encrypted() {
		return nil, fmt.Errorf("file set %s holds secrets: refused with encryption off (secret files are stored encrypted only)", opts.Name)
	}
	log := zerolog.Ctx(ctx)
	if err := r.Ensure(ctx, opts.PitrVersion); err != nil {
		return nil, err
	}
	keyID := opts.DedupKey.KeyID()
	if err := r.CheckDedupKeyID(ctx, keyID, opts.Now()); err != nil {
		return nil, err
	}
	pol, err := opts.DedupKey.polynomial()
	if err != nil {
		return nil, fmt.Errorf("chunker polynomial: %w", err)
	}
	ix, err := r.LoadChunkIndexCached(ctx, nil, opts.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("load chunk index: %w", err)
	}
	host, _ := os.Hostname()
	start := opts.Now().UTC()
	id, err := r.ReserveID(ctx, start, func(id string) (string, error) {
		return catalog.SnapshotReservationKey(opts.Name, id)
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", opts.Name, err)
	}
	snap := &catalog.Snapshot{
		ID: id, Format: catalog.FormatVersion, Set: opts.Name, Kind: opts.Kind, Host: host,
		PitrVersion: opts.PitrVersion, StartTime: start, Encrypted: r.Encrypted(), KeyID: keyID,
	}
	manifestKey, err := catalog.ManifestKey(snap.Set, snap.ID, snap.Encrypted)
	if err != nil {
		return nil, err
	}
	entryKey, err := catalog.SnapshotEntryKey(snap.Set, snap.ID)
	if err != nil {
		return nil, err
	}
	log.Info().Str("set", snap.Set).Str("kind", snap.Kind).Str("snapshot", snap.ID).Int("chunks_known", ix.Len()).Msg("files snapshot started")
	var cs cacheStats
	if err := store(ctx, opts, roots, pol, ix, snap, manifestKey, &cs); err != nil {
		// Both at once: with the store down, each waits out its timeout.
		var wg sync.WaitGroup
		wg.Go(func() { r.Discard(ctx, manifestKey) })
		if key, kerr := catalog.SnapshotReservationKey(snap.Set, snap.ID); kerr == nil {
			wg.Go(func() { r.ReleaseID(ctx, key) })
		}
		wg.Wait()
		return nil, fmt.Errorf("snapshot %s: %w", opts.Name, err)
	}
	snap.EndTime = opts.Now().UTC()
	if err := r.SaveEntry(ctx, entryKey, catalog.MarshalSnapshot(snap)); err != nil {
		cs.next.abort()
		return nil, fmt.Errorf("write snapshot entry: %w", err)
	}
	if err := cs.next.commit(); err != nil {
		log.Debug().Str("set", snap.Set).Err(unwrapPath(err)).Msg("files stat cache not written: the next snapshot reads every file")
	}
	log.Info().Str("set", snap.Set).Str("snapshot", snap.ID).Int64("files", snap.Files).
		Int64("files_reused", cs.reused).Int64("files_read", cs.read).Int64("dirs", snap.Dirs).
		Int64("symlinks", snap.Links).Int64("bytes", snap.Bytes).Int64("new_bytes", snap.NewBytes).
		Int64("stored_bytes", snap.Stored).Int64("changed", snap.Changed).
		Dur("took", snap.EndTime.Sub(snap.StartTime).Round(time.Millisecond)).Msg("files snapshot complete")
	if snap.Changed > 0 {
		return snap, fmt.Errorf("snapshot %s of %s: %w: %d never held still in %d reads; stored as last read and flagged changed",
			snap.ID, snap.Set, ErrChanged, snap.Changed, maxReads)
	}
	return snap, nil
}

// checkOptions checks the set and returns its paths, cleaned, without
// those under another of them, sorted as the manifest is.
func checkOptions(opts *Options) ([]string, error) {
	if !catalog.ValidSetName(opts.Name) {
		return nil, fmt.Errorf("file set name %q: want lower-case letters, digits, _ and -, starting with a letter or digit", opts.Name)
	}
	if opts.Kind == "" {
		opts.Kind = KindUploads
	}
	if opts.Kind != KindUploads && opts.Kind != KindSecrets {
		return nil, fmt.Errorf("file set %s: kind %q: want %s or %s", opts.Name, opts.Kind, KindUploads, KindSecrets)
	}
	if opts.DedupKey.IsZero() {
		return nil, errors.New("file snapshot: no dedup key")
	}
	if len(opts.Paths) == 0 {
		return nil, fmt.Errorf("file set %s: no paths", opts.Name)
	}
	for _, p := range opts.Exclude {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("file set %s: exclude pattern %q: %v", opts.Name, p, err)
		}
	}
	var roots []string
	for _, p := range opts.Paths {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("file set %s: path %q is not absolute", opts.Name, p)
		}
		roots = append(roots, path.Clean(p))
	}
	slices.Sort(roots)
	roots = slices.Compact(roots)
	var out []string
	for _, p := range roots {
		if !slices.ContainsFunc(out, func(q string) bool { return under(p, q) }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// under says whether p is inside directory q (not q itself).
func under(p, q string) bool {
	if q == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, q+"/")
}

// cacheStats is what the stat cache did for a snapshot: the new cache
// (nil: none), to commit once the snapshot is stored, and how many files
// were taken from the old one and how many read.
type cacheStats struct {
	next         *statWriter
	reused, read int64
}

// openCaches opens the set's stat cache (nil if none or unusable, said
// at debug level) and starts the new one.
func openCaches(ctx context.Context, opts Options) (*statReader, *statWriter) {
	p := statCachePath(opts.CacheDir, opts.Name)
	if p == "" {
		return nil, nil
	}
	log := zerolog.Ctx(ctx)
	h := statHeaderFor(opts.CacheDir, opts.Name, opts.DedupKey.KeyID())
	var old *statReader
	if !opts.NoCache {
		var err error
		if old, err = openStatCache(p, h); err != nil {
			log.Debug().Str("set", opts.Name).Err(unwrapPath(err)).Msg("files stat cache not used: every file is read")
		}
	}
	next, err := createStatCache(p, h)
	if err != nil {
		log.Debug().Str("set", opts.Name).Err(unwrapPath(err)).Msg("files stat cache cannot be written: the next snapshot reads every file")
		next = nil
	}
	return old, next
}

// store walks the set, chunks and stores the files, and streams the
// manifest into manifestKey; it returns once the manifest and every pack
// it needs are stored. On success cs.next is the new stat cache, for the
// caller to commit or abort.
func store(ctx context.Context, opts Options, roots []string, pol chunker.Pol, ix *repo.ChunkIndex, snap *catalog.Snapshot, manifestKey string, cs *cacheStats) (err error) {
	r := opts.Repo
	old, next := openCaches(ctx, opts)
	defer old.close()
	defer func() {
		if err != nil {
			next.abort()
			return
		}
		cs.next = next
	}()
	pw := r.NewPackWriter(ctx, ix, opts.CacheDir)
	pr, pipeW := io.Pipe()
	done := make(chan struct {
		w   repo.Written
		err error
	}, 1)
	go func() {
		w, err := r.PutSealed(ctx, manifestKey, pr)
		if err == nil {
			err = errors.New("manifest upload ended early")
		} else {
			err = fmt.Errorf("store manifest: %w", err)
		}
		pr.CloseWithError(err) // a walker still writing stops
		if w.Key != "" {
			err = nil
		}
		done <- struct {
			w   repo.Written
			err error
		}{w, err}
	}()
	bw := bufio.NewWriterSize(pipeW, 256<<10)
	w := newWalker(ctx, opts, pol, pw, bw, snap)
	w.cache, w.next = old, next
	w.cutoff = time.Now().UnixNano() - racyWindow
	if opts.trustRecent {
		w.cutoff = math.MaxInt64
	}
	err = w.walkRoots(roots)
	cs.reused, cs.read = w.reused, w.readNo
	if ferr := old.failure(); ferr != nil {
		zerolog.Ctx(ctx).Debug().Str("set", opts.Name).Err(ferr).Msg("files stat cache damaged: files past the damage are read")
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		pipeW.CloseWithError(err)
		<-done
		_ = pw.Close()
		return err
	}
	_ = pipeW.Close()
	res := <-done
	if err := pw.Close(); err != nil {
		return err
	}
	if res.err != nil {
		return res.err
	}
	st := pw.Stats()
	snap.NewBytes, snap.Stored = st.NewBytes, st.Stored+res.w.Stored
	snap.Manifest = catalog.Part{Name: "manifest", Key: manifestKey, SHA256: res.w.SHA256, Bytes: res.w.Bytes, Stored: res.w.Stored}
	zerolog.Ctx(ctx).Info().Str("set", snap.Set).Str("snapshot", snap.ID).Int64("chunks_stored", st.Chunks).Int64("packs", st.Packs).
		Int64("objects_put", st.Puts+1).Int64("stored_bytes", snap.Stored).Msg("files chunks and manifest stored")
	return nil
}

// chunkSum is the plaintext SHA-256 of a chunk, recorded in the manifest.
func chunkSum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// writeLine writes v as one JSON line.
func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
