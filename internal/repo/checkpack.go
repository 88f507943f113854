package repo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
)

// CheckPack reads pack pi.Pack whole with one GET (pitr verify) and
// checks its stored bytes against the SHA-256 its key names and the size
// its index gives. With open, it also unwraps the pack's key with the
// codec's identities and opens every blob the index lists (authenticated
// under the key and the chunk ID, decompressed, its size checked, and its
// plaintext against sum(id) where sum returns one: the manifests' record).
// Without open it needs no identity. It returns the stored bytes read; an
// error names the pack (and the chunk), wrapping ErrDamaged for bytes
// that do not match.
func (r *Repo) CheckPack(ctx context.Context, pi *catalog.PackIndex, open bool, sum func(id string) string) (int64, error) {
	key, err := catalog.PackKey(pi.Pack)
	if err != nil {
		return 0, err
	}
	rc, err := r.st.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("read pack %.16s: %w", pi.Pack, err)
	}
	defer rc.Close()
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(rc, h)}
	br := bufio.NewReaderSize(cr, 1<<20)
	if open {
		if err := r.openPackBlobs(ctx, br, pi, sum); err != nil {
			return cr.n, err
		}
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return cr.n, fmt.Errorf("read pack %.16s: %w", pi.Pack, err)
	}
	if cr.n != pi.Size {
		return cr.n, fmt.Errorf("pack %.16s: %w: %d bytes stored, index says %d", pi.Pack, ErrDamaged, cr.n, pi.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != pi.Pack {
		return cr.n, fmt.Errorf("pack %.16s: %w: sha256 mismatch: stored bytes hash to %.16s", pi.Pack, ErrDamaged, got)
	}
	return cr.n, nil
}

// openPackBlobs reads the header and then each blob from br, the pack's
// bytes from its start, and opens them.
func (r *Repo) openPackBlobs(ctx context.Context, br *bufio.Reader, pi *catalog.PackIndex, sum func(string) string) error {
	first := BlobRef{Pack: pi.Pack, Header: pi.Header}
	if pi.Header < 4 || pi.Header > maxPackHeader {
		return fmt.Errorf("pack %.16s: index says its header is %d bytes", pi.Pack, pi.Header)
	}
	hdr := make([]byte, pi.Header)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return fmt.Errorf("pack %.16s: %w: header: %v", pi.Pack, ErrDamaged, err)
	}
	aead, err := r.packKeyOf(hdr, first)
	if err != nil {
		return err
	}
	blobs := append([]catalog.Blob(nil), pi.Blobs...)
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].Offset < blobs[j].Offset })
	pos := pi.Header
	var buf []byte
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		ref := BlobRef{Pack: pi.Pack, Header: pi.Header, Blob: b}
		if b.Offset < pos || b.Length <= 0 || b.Size < 0 || b.Size > maxBlobPlain || b.Offset+b.Length > pi.Size {
			return fmt.Errorf("chunk %.16s in pack %.16s: %w: index gives offset %d, length %d, size %d", b.ID, pi.Pack, ErrDamaged, b.Offset, b.Length, b.Size)
		}
		if _, err := io.CopyN(io.Discard, br, b.Offset-pos); err != nil {
			return fmt.Errorf("read pack %.16s: %w", pi.Pack, err)
		}
		if int64(cap(buf)) < b.Length {
			buf = make([]byte, b.Length)
		}
		sealed := buf[:b.Length]
		if _, err := io.ReadFull(br, sealed); err != nil {
			return fmt.Errorf("read chunk %.16s from pack %.16s: %w", b.ID, pi.Pack, err)
		}
		want := ""
		if sum != nil {
			want = sum(b.ID)
		}
		if _, err := openBlob(sealed, ref, aead, want); err != nil {
			return err
		}
		pos = b.Offset + b.Length
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// PackIndexes reads every index object, from the cache directory dir where
// it has them (as LoadChunkIndexCached; "" for none), by SHA-256. Unlike
// LoadChunkIndexCached it goes on past an index object that cannot be
// read or does not match its name: bad holds those, each with why. The
// error is for the listing or ctx only.
func (r *Repo) PackIndexes(ctx context.Context, dir string) (good map[string]*catalog.PackIndex, bad map[string]error, err error) {
	sums, err := r.IndexObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	good, bad = map[string]*catalog.PackIndex{}, map[string]error{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, sum := range sums {
		if pi, ok := readCachedIndex(dir, sum); ok {
			good[sum] = pi
			continue
		}
		g.Go(func() error {
			data, err := r.readIndexBytes(gctx, sum)
			var pi *catalog.PackIndex
			if err == nil {
				pi, err = catalog.UnmarshalPackIndex(data)
			}
			if cerr := gctx.Err(); cerr != nil {
				return cerr
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				bad[sum] = err
				return nil
			}
			cacheIndex(dir, sum, data)
			good[sum] = pi
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return good, bad, nil
}
