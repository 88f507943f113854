package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// Packs hold the chunks of file snapshots: a header holding the pack's
// key (age-encrypted), then each chunk compressed and sealed on its own
// under that key, end to end, about 16 MiB a pack (packcrypt.go has the
// framing). A pack's index object says which chunk IDs it holds where,
// so a host can tell what the repository has without reading a pack, and
// a restore reads one chunk with a ranged GET (and the header once). See
// catalog's files layout.

// BlobRef locates one sealed chunk.
type BlobRef struct {
	Pack   string // the pack's SHA-256
	Header int64  // the pack's header bytes (catalog.PackIndex.Header)
	catalog.Blob
}

// ChunkIndex is what the repository's index objects say: every stored
// chunk ID and where it is. It needs no secret key.
type ChunkIndex struct {
	blobs     map[string]BlobRef
	indexes   map[string]bool // index object SHA-256s read
	condemned map[string]bool // packs condemned by pack GC (gc.go): no dedup against them
}

// NewChunkIndex returns an empty index (a repository with no chunks).
func NewChunkIndex() *ChunkIndex {
	return &ChunkIndex{blobs: map[string]BlobRef{}, indexes: map[string]bool{}, condemned: map[string]bool{}}
}

// Lookup returns where chunk id is stored, in a pack not condemned if
// one holds it: a restore reads a condemned pack until it is deleted.
func (ix *ChunkIndex) Lookup(id string) (BlobRef, bool) {
	b, ok := ix.blobs[id]
	return b, ok
}

// LookupLive is Lookup leaving out condemned packs: what a snapshot may
// deduplicate against. A chunk only a condemned pack holds is stored
// again, since pack GC may delete that pack once its grace has passed.
func (ix *ChunkIndex) LookupLive(id string) (BlobRef, bool) {
	b, ok := ix.blobs[id]
	if !ok || ix.condemned[b.Pack] {
		return BlobRef{}, false
	}
	return b, true
}

// Condemn marks packs (SHA-256s) as condemned; call it before adding
// their index objects, so that a chunk also held by a live pack is found
// there.
func (ix *ChunkIndex) Condemn(packs ...string) {
	for _, p := range packs {
		ix.condemned[p] = true
	}
}

// Len is the number of chunks the index knows.
func (ix *ChunkIndex) Len() int { return len(ix.blobs) }

// Has says whether the index object with SHA-256 sum has been read.
func (ix *ChunkIndex) Has(sum string) bool { return ix.indexes[sum] }

// Add records the chunks of one index object (sum: its SHA-256). A chunk
// stored in two packs (two hosts racing, or stored again beside a
// condemned pack) keeps the first location seen in a pack not condemned.
func (ix *ChunkIndex) Add(sum string, pi *catalog.PackIndex) {
	ix.indexes[sum] = true
	for _, b := range pi.Blobs {
		if old, ok := ix.blobs[b.ID]; !ok || ix.condemned[old.Pack] && !ix.condemned[pi.Pack] {
			ix.blobs[b.ID] = BlobRef{Pack: pi.Pack, Header: pi.Header, Blob: b}
		}
	}
}

// IndexObjects lists the SHA-256s of the repository's index objects.
func (r *Repo) IndexObjects(ctx context.Context) ([]string, error) {
	var out []string
	err := r.st.List(ctx, catalog.IndexPrefix, func(oi storage.ObjectInfo) error {
		if sum, ok := catalog.ParseIndexKey(oi.Key); ok {
			out = append(out, sum)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list chunk index: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

// ReadIndexObject reads and verifies one index object.
func (r *Repo) ReadIndexObject(ctx context.Context, sum string) (*catalog.PackIndex, error) {
	data, err := r.readIndexBytes(ctx, sum)
	if err != nil {
		return nil, err
	}
	return catalog.UnmarshalPackIndex(data)
}

// LoadChunkIndex reads every index object not in ix yet (nil: a new
// index) and returns ix. It reads the condemned-pack records (gc.go)
// before and after the index objects: LookupLive leaves their packs out,
// including those of a record written while it read.
func (r *Repo) LoadChunkIndex(ctx context.Context, ix *ChunkIndex) (*ChunkIndex, error) {
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
	for _, sum := range sums {
		if ix.Has(sum) {
			continue
		}
		pi, err := r.ReadIndexObject(ctx, sum)
		if err != nil {
			return nil, err
		}
		ix.Add(sum, pi)
	}
	if err := r.condemnInto(ctx, ix); err != nil { // again: one written while we read
		return nil, err
	}
	return ix, nil
}

// ErrChunkMissing is wrapped when a chunk a manifest names is in no pack.
var ErrChunkMissing = errors.New("chunk not in the repository")

// ReadBlob reads one sealed chunk with a ranged GET (and its pack's
// header, the first time the Repo reads that pack) and returns its
// plaintext, verified against the index's size and wantSHA256 (the
// manifest's record). encrypted is the snapshot's: the pack's header says
// how its blobs are sealed (a snapshot may reuse chunks stored before
// encryption was turned on), so it is not needed to open them.
func (r *Repo) ReadBlob(ctx context.Context, ref BlobRef, encrypted bool, wantSHA256 string) ([]byte, error) {
	var out []byte
	err := r.ReadBlobRun(ctx, []BlobRef{ref}, encrypted, []string{wantSHA256}, func(_ int, data []byte) error {
		out = data
		return nil
	})
	return out, err
}
