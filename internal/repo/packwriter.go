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
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// PackSize is the size at which a PackWriter stores the pack it fills.
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

// PackWriter stores chunks the repository lacks into packs. Each chunk is
// sealed on its own with the repository's codec (zstd, then age when
// encrypting), so a restore can read one with a ranged GET; sealed chunks
// go end to end into a pack buffer, and at PackSize the pack is stored
// create-only under its ciphertext's SHA-256, then its index object under
// its content's SHA-256, and its chunks are added to the ChunkIndex. A
// crash leaves whole packs, each stored before its index object: a pack
// without one is unreferenced and harmless, and every indexed chunk is in
// a stored pack, so a rerun reuses what has an index object.
//
// Memory: the pack being filled and at most packUploads packs being
// stored. Add is for one goroutine; the index it updates must not be used
// elsewhere until Close returns.
type PackWriter struct {
	r        *Repo
	ix       *ChunkIndex
	cacheDir string

	mu    sync.Mutex // guards ix, stats, err against the uploads
	stats PackStats
	err   error

	seen  map[string]bool // IDs added this run: stored or in a pack not stored yet
	buf   *bytes.Buffer
	blobs []catalog.Blob

	ctx    context.Context
	cancel context.CancelFunc
	g      *errgroup.Group
	closed bool
}

// NewPackWriter returns a writer adding to ix (the repository's chunks, as
// LoadChunkIndex or LoadChunkIndexCached read them). cacheDir, if not
// empty, is the local index cache: each index object stored is written
// there too.
func (r *Repo) NewPackWriter(ctx context.Context, ix *ChunkIndex, cacheDir string) *PackWriter {
	ctx, cancel := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(packUploads)
	return &PackWriter{r: r, ix: ix, cacheDir: cacheDir, seen: map[string]bool{},
		buf: new(bytes.Buffer), ctx: ctx, cancel: cancel, g: g}
}

// Has says whether chunk id is stored or added this run already.
func (w *PackWriter) Has(id string) bool {
	if w.seen[id] {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.ix.Lookup(id)
	return ok
}

// Add stores the chunk data under id (the caller's keyed hash of it)
// unless the repository has it or it was added this run; added says it
// was new. data is sealed before Add returns, so the caller may reuse it.
// An error means an upload failed: the writer is done, and Close returns
// the same error.
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
	sealed, err := w.r.Seal(data)
	if err != nil {
		return false, fmt.Errorf("seal chunk: %w", err)
	}
	w.seen[id] = true
	w.blobs = append(w.blobs, catalog.Blob{ID: id, Offset: int64(w.buf.Len()), Length: int64(len(sealed.Body)), Size: int64(len(data))})
	w.buf.Write(sealed.Body)
	w.mu.Lock()
	w.stats.Chunks++
	w.stats.NewBytes += int64(len(data))
	w.mu.Unlock()
	if w.buf.Len() >= PackSize {
		w.flush()
	}
	return true, nil
}

func (w *PackWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && w.ctx.Err() != nil {
		return w.ctx.Err()
	}
	return w.err
}

// flush hands the pack being filled to an upload (waiting for a free one).
func (w *PackWriter) flush() {
	if w.buf.Len() == 0 {
		return
	}
	body, blobs := w.buf.Bytes(), w.blobs
	w.buf, w.blobs = new(bytes.Buffer), nil
	w.g.Go(func() error {
		if err := w.storePack(w.ctx, body, blobs); err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
			return err
		}
		return nil
	})
}

// storePack stores one pack, then its index object, then adds it to ix.
func (w *PackWriter) storePack(ctx context.Context, body []byte, blobs []catalog.Blob) error {
	sum := sha256.Sum256(body)
	pi := &catalog.PackIndex{Format: catalog.FormatVersion, Pack: hex.EncodeToString(sum[:]), Size: int64(len(body)), Blobs: blobs}
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

// Close stores the last pack and waits for every upload; it returns the
// first error. Everything added is in the index (and the repository) once
// it returns nil.
func (w *PackWriter) Close() error {
	if w.closed {
		return w.failed()
	}
	if w.failed() == nil {
		w.flush()
	}
	w.closed = true
	err := w.g.Wait()
	w.cancel()
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
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
// be written is only slower.
func (r *Repo) LoadChunkIndexCached(ctx context.Context, ix *ChunkIndex, dir string) (*ChunkIndex, error) {
	if ix == nil {
		ix = NewChunkIndex()
	}
	sums, err := r.IndexObjects(ctx)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		_ = os.MkdirAll(dir, 0o700)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, sum := range sums {
		if ix.Has(sum) {
			continue
		}
		if pi, ok := readCachedIndex(dir, sum); ok {
			ix.Add(sum, pi)
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
