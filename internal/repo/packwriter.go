package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// PackSize is the most a pack holds: a chunk that would take the pack
// past it starts the next one. 16 MiB is also the S3 store's default part
// size, so a pack is one PutObject straight from memory, not a multipart
// upload copying it into part buffers.
const PackSize = 16 << 20

// packUploads is how many full packs a PackWriter stores at once.
const packUploads = 2

// PackStats is what a PackWriter stored.
type PackStats struct {
	Chunks   int64 // chunks stored (not found in the index)
	NewBytes int64 // their plaintext
	Stored   int64 // bytes uploaded: packs and index objects
	Puts     int64 // objects created: packs and index objects
	Packs    int64
}

// PackWriter stores chunks the repository lacks into packs. A pack starts
// with a header holding a fresh pack key wrapped with age to the codec's
// recipients (no key with encryption off); each chunk is compressed as one
// zstd frame and sealed with XChaCha20-Poly1305 under the pack key (AD:
// its ID), so a restore can read one with a ranged GET after reading the
// pack's header once (packcrypt.go). Sealed chunks go end to end into a
// pack buffer, and at PackSize the pack is stored create-only under its
// ciphertext's SHA-256, then its index object under its content's
// SHA-256, and its chunks are added to the ChunkIndex. A crash leaves
// whole packs, each stored before its index object: a pack without one is
// unreferenced and harmless, and every indexed chunk is in a stored pack,
// so a rerun reuses what has an index object.
//
// Compression runs on a few goroutines, encryption as a chunk is put
// into the pack (under the pack's key), so chunks land in a pack in the
// order they were compressed; the index says where each is. Memory: the
// pack being filled, at most packUploads packs being stored, and a copy
// of each chunk waiting to be sealed (sealers+1 of them). Add is for one
// goroutine; the index it updates must not be used elsewhere until Close
// returns.
type PackWriter struct {
	r        *Repo
	ix       *ChunkIndex
	cacheDir string

	mu    sync.Mutex // guards ix, stats, err against the sealers and uploads
	stats PackStats
	err   error

	seen map[string]bool // Add's: IDs added this run, stored or on their way
	jobs chan sealJob
	bufs chan []byte // chunk copies, free for Add to fill
	wg   sync.WaitGroup

	packMu sync.Mutex // guards buf, blobs, pack and the hand-over of full packs
	free   chan *bytes.Buffer
	buf    *bytes.Buffer
	blobs  []catalog.Blob
	pack   *packSealer // the pack being filled; nil: none started

	ctx      context.Context
	cancel   context.CancelFunc
	g        *errgroup.Group
	closed   bool
	closeErr error
}

type sealJob struct {
	id   string
	data []byte
}

// NewPackWriter returns a writer adding to ix (the repository's chunks, as
// LoadChunkIndex or LoadChunkIndexCached read them). cacheDir, if not
// empty, is the local index cache: each index object stored is written
// there too.
func (r *Repo) NewPackWriter(ctx context.Context, ix *ChunkIndex, cacheDir string) *PackWriter {
	ctx, cancel := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(packUploads)
	sealers := min(max(runtime.GOMAXPROCS(0), 1), 4)
	w := &PackWriter{r: r, ix: ix, cacheDir: cacheDir, seen: map[string]bool{},
		jobs: make(chan sealJob, sealers+1), bufs: make(chan []byte, sealers+1),
		free: make(chan *bytes.Buffer, packUploads+1), ctx: ctx, cancel: cancel, g: g}
	for range sealers + 1 {
		w.bufs <- nil
	}
	for range packUploads {
		w.free <- new(bytes.Buffer)
	}
	w.buf = newPackBuffer()
	for range sealers {
		w.wg.Go(w.sealer)
	}
	return w
}

// Has says whether chunk id is stored, in a pack not condemned, or added
// this run already.
func (w *PackWriter) Has(id string) bool {
	if w.seen[id] {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.ix.LookupLive(id)
	return ok
}

// Add stores the chunk data under id (the caller's keyed hash of it)
// unless the repository has it or it was added this run; added says it
// was new. data is copied before Add returns, so the caller may reuse it.
// An error means sealing or an upload failed: the writer is done, and
// Close returns the same error.
func (w *PackWriter) Add(id string, data []byte) (added bool, err error) {
	if w.closed {
		return false, errors.New("pack writer: add after close")
	}
	if err := w.failed(); err != nil {
		return false, err
	}
	if w.Has(id) {
		return false, nil
	}
	var buf []byte
	select {
	case buf = <-w.bufs:
	case <-w.ctx.Done():
		return false, w.failedOr(w.ctx.Err())
	}
	w.seen[id] = true
	w.jobs <- sealJob{id: id, data: append(buf[:0], data...)} // never blocks: a job per buffer
	w.mu.Lock()
	w.stats.Chunks++
	w.stats.NewBytes += int64(len(data))
	w.mu.Unlock()
	return true, nil
}

// sealer compresses chunks into a buffer of its own and appends them to
// the pack being filled.
func (w *PackWriter) sealer() {
	var scratch []byte
	enc, encErr := w.r.blobEncoder()
	for j := range w.jobs {
		switch err := w.failed(); {
		case err != nil:
			w.fail(err) // a cancelled ctx too: the chunk is not stored, Close must say so
		case encErr != nil:
			w.fail(fmt.Errorf("seal chunk: %w", encErr))
		default:
			scratch = enc.EncodeAll(j.data, scratch[:0])
			if err := w.append(j.id, scratch, int64(len(j.data))); err != nil {
				w.fail(fmt.Errorf("seal chunk: %w", err))
			}
		}
		w.bufs <- j.data
	}
}

// append seals a compressed chunk into the pack being filled, or into the
// next one if it would take this one past PackSize, and hands a full pack
// to an upload.
func (w *PackWriter) append(id string, z []byte, size int64) error {
	w.packMu.Lock()
	defer w.packMu.Unlock()
	if w.pack != nil && len(w.blobs) > 0 && w.buf.Len()+w.pack.sealedLen(len(z)) > PackSize {
		w.flush()
	}
	if w.pack == nil {
		ps, err := w.r.newPackSealer()
		if err != nil {
			return err
		}
		w.pack = ps
		w.buf.Write(ps.header)
	}
	off := w.buf.Len()
	sealed, err := w.pack.seal(w.buf.AvailableBuffer(), id, z)
	if err != nil {
		return err
	}
	w.buf.Write(sealed)
	w.blobs = append(w.blobs, catalog.Blob{ID: id, Offset: int64(off), Length: int64(len(sealed)), Size: size})
	if w.buf.Len() >= PackSize {
		w.flush()
	}
	return nil
}

func (w *PackWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *PackWriter) failed() error { return w.failedOr(nil) }

// failedOr is the writer's first error, else err.
func (w *PackWriter) failedOr(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err == nil && w.ctx.Err() != nil {
		return w.ctx.Err()
	}
	return err
}

// flush hands the pack being filled to an upload (waiting for a free
// one); packMu is held.
func (w *PackWriter) flush() {
	if w.pack == nil || len(w.blobs) == 0 {
		return
	}
	buf, blobs, header := w.buf, w.blobs, int64(len(w.pack.header))
	w.blobs, w.pack = nil, nil
	// At most packUploads packs are out: the next buffer is one an upload
	// gave back (the wait is g.Go's, for a free upload slot, first).
	w.g.Go(func() error {
		defer func() { buf.Reset(); w.free <- buf }()
		if err := w.storePack(w.ctx, buf.Bytes(), header, blobs); err != nil {
			w.fail(err)
			return err
		}
		return nil
	})
	w.buf = <-w.free
	if w.buf.Cap() == 0 {
		w.buf = newPackBuffer()
	}
}

// newPackBuffer holds a full pack without growing.
func newPackBuffer() *bytes.Buffer { return bytes.NewBuffer(make([]byte, 0, PackSize)) }

// storePack stores one pack, then its index object, then adds it to ix.
func (w *PackWriter) storePack(ctx context.Context, body []byte, header int64, blobs []catalog.Blob) error {
	sum := sha256.Sum256(body)
	pi := &catalog.PackIndex{Format: catalog.FormatVersion, Pack: hex.EncodeToString(sum[:]), Size: int64(len(body)), Header: header, Blobs: blobs}
	packKey, err := catalog.PackKey(pi.Pack)
	if err != nil {
		return err
	}
	existed, err := w.r.CreateObject(ctx, packKey, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("store pack %.16s: %w", pi.Pack, err)
	}
	var stored, puts int64
	if !existed {
		stored, puts = int64(len(body)), 1
	}
	data := catalog.MarshalPackIndex(pi)
	isum := sha256.Sum256(data)
	indexSum := hex.EncodeToString(isum[:])
	indexKey, err := catalog.IndexKey(indexSum)
	if err != nil {
		return err
	}
	existed, err = w.r.CreateObject(ctx, indexKey, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("store index of pack %.16s: %w", pi.Pack, err)
	}
	if !existed {
		stored, puts = stored+int64(len(data)), puts+1
	}
	cacheIndex(w.cacheDir, indexSum, data)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ix.Add(indexSum, pi)
	w.stats.Stored += stored
	w.stats.Puts += puts
	w.stats.Packs++
	return nil
}

// Close seals what was added, stores the last pack and waits for every
// upload; it returns the first error. Everything added is in the index
// (and the repository) once it returns nil.
func (w *PackWriter) Close() error {
	if w.closed {
		return w.closeErr
	}
	w.closed = true
	close(w.jobs)
	w.wg.Wait()
	if w.failed() == nil {
		w.packMu.Lock()
		w.flush()
		w.packMu.Unlock()
	}
	err := w.g.Wait() // which cancels w.ctx: from here on only w.err counts
	if err == nil {
		w.mu.Lock()
		err = w.err // a sealing error, or a chunk dropped when ctx ended
		w.mu.Unlock()
	}
	w.cancel()
	w.closeErr = err
	return err
}

// Stats returns what the writer stored so far.
func (w *PackWriter) Stats() PackStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// The local index cache is a directory of index objects by name
// (<sha256>.json). Index objects are content-named, so a cached one is
// checked against its name when read and is never stale; a damaged or
// missing one is fetched again. Deleting the directory only makes the
// next load fetch every index object.

// LoadChunkIndexCached is LoadChunkIndex reading index objects from the
// cache directory dir where it has them, fetching the others (several at
// once) and adding them to it. dir "" is no cache. A cache that cannot
// be written is only slower. Condemned-pack records are always read from
// the repository, before and after the index objects.
func (r *Repo) LoadChunkIndexCached(ctx context.Context, ix *ChunkIndex, dir string) (*ChunkIndex, error) {
	if ix == nil {
		ix = NewChunkIndex()
	}
	if err := r.condemnInto(ctx, ix); err != nil {
		return nil, err
	}
	sums, err := r.IndexObjects(ctx)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		_ = os.MkdirAll(dir, 0o700)
		pruneIndexCache(dir, sums)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, sum := range sums {
		mu.Lock()
		known := ix.Has(sum)
		mu.Unlock()
		if known {
			continue
		}
		if pi, ok := readCachedIndex(dir, sum); ok {
			mu.Lock()
			ix.Add(sum, pi)
			mu.Unlock()
			continue
		}
		g.Go(func() error {
			data, err := r.readIndexBytes(gctx, sum)
			if err != nil {
				return err
			}
			pi, err := catalog.UnmarshalPackIndex(data)
			if err != nil {
				return err
			}
			cacheIndex(dir, sum, data)
			mu.Lock()
			defer mu.Unlock()
			ix.Add(sum, pi)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := r.condemnInto(ctx, ix); err != nil { // again: one written while we read
		return nil, err
	}
	return ix, nil
}

func (r *Repo) readIndexBytes(ctx context.Context, sum string) ([]byte, error) {
	key, err := catalog.IndexKey(sum)
	if err != nil {
		return nil, err
	}
	rc, err := r.st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("%s: %w: content does not match its name", key, ErrDamaged)
	}
	return data, nil
}

// pruneIndexCache removes the cached index objects the repository no
// longer lists (pack GC deleted them), best effort.
func pruneIndexCache(dir string, sums []string) {
	listed := make(map[string]bool, len(sums))
	for _, s := range sums {
		listed[s+".json"] = true
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		if name := de.Name(); de.Type().IsRegular() && len(name) == 64+len(".json") && filepath.Ext(name) == ".json" && !listed[name] {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
}

func readCachedIndex(dir, sum string) (*catalog.PackIndex, bool) {
	if dir == "" {
		return nil, false
	}
	data, err := os.ReadFile(filepath.Join(dir, sum+".json"))
	if err != nil {
		return nil, false
	}
	if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
		return nil, false
	}
	pi, err := catalog.UnmarshalPackIndex(data)
	return pi, err == nil
}

// cacheIndex writes an index object into the cache (temp file, rename),
// best effort.
func cacheIndex(dir, sum string, data []byte) {
	if dir == "" {
		return
	}
	path := filepath.Join(dir, sum+".json")
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, "."+sum+"-*")
	if err != nil {
		return
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err != nil || cerr != nil {
		return
	}
	_ = os.Rename(f.Name(), path)
}

// ErrDedupKeyMismatch is wrapped when a host's dedup key is not the one
// the repository's chunk IDs are under.
var ErrDedupKeyMismatch = errors.New("dedup key is not the repository's")

// CheckDedupKeyID records keyID (a dedup key's fingerprint) as the
// repository's, create-only, if none is recorded yet, and otherwise
// checks it is the recorded one: chunk IDs under two keys would never
// deduplicate against each other, and a restore needs none of it.
func (r *Repo) CheckDedupKeyID(ctx context.Context, keyID string, now time.Time) error {
	host, _ := os.Hostname()
	b, _ := json.Marshal(catalog.DedupKeyID{Format: catalog.FormatVersion, KeyID: keyID, Created: now.UTC(), Host: host})
	err := r.st.Create(ctx, catalog.DedupKeyIDKey, bytes.NewReader(append(b, '\n')))
	if err == nil {
		return nil
	}
	if !errors.Is(err, storage.ErrExist) {
		return fmt.Errorf("record the dedup key's fingerprint: %w", err)
	}
	rc, err := r.st.Get(ctx, catalog.DedupKeyIDKey)
	if err != nil {
		return fmt.Errorf("read the repository's dedup key fingerprint: %w", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return fmt.Errorf("read the repository's dedup key fingerprint: %w", err)
	}
	var got catalog.DedupKeyID
	if err := json.Unmarshal(data, &got); err != nil || got.KeyID == "" {
		return fmt.Errorf("%s: %w", catalog.DedupKeyIDKey, ErrDamaged)
	}
	if got.KeyID != keyID {
		return fmt.Errorf("%w (this key's fingerprint %.16s, the repository's %.16s, first used on host %q): copy the dedup key file from a host that snapshots into this repository",
			ErrDedupKeyMismatch, keyID, got.KeyID, got.Host)
	}
	return nil
}
