package wal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
)

// Streamed WAL: wal-receive stores the unfinished segment in chunks
// (catalog.StreamChunk) until the whole segment is stored. A segment that
// exists only as chunks is handed to PostgreSQL the way pg_receivewal's
// .partial files are used: the bytes received, zero-padded to the segment
// size, so recovery replays every complete record and stops at the first
// missing one.

// Sealed segments (issue 13): once a segment's chunks cover it, wal-receive
// stores a seal (catalog.Seal) naming them and the segment's SHA-256
// instead of uploading the segment a second time. A seal is a whole copy
// to every reader (ListWAL, the Index, wal-push's duplicate check); its
// bytes are read from the chunks it names (CopySealed).

// listing is everything stored under one WAL name's prefix.
type listing struct {
	full   []catalog.WALObject // whole copies first, then seals
	chunks []catalog.StreamChunk
}

func list(ctx context.Context, st storage.Storage, name string) (listing, error) {
	prefix, err := catalog.WALPrefix(name)
	if err != nil {
		return listing{}, err
	}
	var l listing
	var seals []catalog.WALObject
	err = st.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if o, ok := catalog.ParseWALKey(oi.Key); ok && o.Name == name {
			o.Size = oi.Size
			l.full = append(l.full, o)
		} else if c, ok := catalog.ParseStreamChunkKey(oi.Key); ok && c.Name == name {
			c.Size = oi.Size
			l.chunks = append(l.chunks, c)
		} else if o, ok := catalog.ParseSealKey(oi.Key); ok && o.Name == name {
			o.Size = oi.Size
			seals = append(seals, o)
		}
		return nil
	})
	l.full = append(l.full, seals...) // a whole copy reads faster
	return l, err
}

// ListAll returns, from one listing, the whole stored copies of name and
// its streamed chunks.
func ListAll(ctx context.Context, st storage.Storage, name string) ([]catalog.WALObject, []catalog.StreamChunk, error) {
	l, err := list(ctx, st, name)
	return l.full, l.chunks, err
}

// Coverage picks, from chunks of one segment, a run covering the segment
// from byte 0 without a hole, and returns it with the number of bytes it
// covers. Overlapping chunks (a receiver that restarted before reporting
// what it had stored) are fine: WAL bytes never change once flushed.
func Coverage(chunks []catalog.StreamChunk) (use []catalog.StreamChunk, end int64) {
	sorted := append([]catalog.StreamChunk(nil), chunks...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Start != sorted[j].Start {
			return sorted[i].Start < sorted[j].Start
		}
		return sorted[i].End > sorted[j].End
	})
	var segSize int64
	for i := 0; i < len(sorted); {
		best := -1
		for ; i < len(sorted) && sorted[i].Start <= end; i++ {
			if segSize != 0 && sorted[i].SegSize != segSize {
				continue
			}
			if sorted[i].End > end && (best < 0 || sorted[i].End > sorted[best].End) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		segSize = sorted[best].SegSize
		use = append(use, sorted[best])
		end = sorted[best].End
	}
	return use, end
}

// ListWAL returns the stored objects for one WAL file name: whole copies,
// then seals (Seal set).
func ListWAL(ctx context.Context, st storage.Storage, name string) ([]catalog.WALObject, error) {
	l, err := list(ctx, st, name)
	return l.full, err
}

// ErrConflict is wrapped when the repository already holds different
// content under a WAL file name. Nothing stored is ever overwritten.
var ErrConflict = errors.New("already archived with different content")

// maxSealBytes bounds a seal's content: a 1 GiB segment in 1 KiB chunks.
const maxSealBytes = 256 << 20

// ReadSeal downloads and checks the seal stored under key.
func ReadSeal(ctx context.Context, st storage.Storage, key string) (*catalog.Seal, error) {
	rc, err := st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("get %s: vanished after listing", key) // transient, as in OpenStored
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(&transportReader{r: rc}, maxSealBytes+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", key, err)
	}
	s, err := catalog.UnmarshalSeal(key, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return s, nil
}

// SealReaders is how many chunks of a sealed segment CopySealed downloads
// at once (and so at most holds in memory).
const SealReaders = 8

// CopySealed writes the sealed segment's bytes to w, in order, from the
// chunks its seal names: each chunk's plaintext must match the SHA-256 in
// its key, and the whole the seal's. Chunks are downloaded SealReaders at
// a time; w gets no byte of a chunk before that chunk is verified, and
// the caller must discard what it wrote when the final check fails.
func CopySealed(ctx context.Context, st storage.Storage, codec *envelope.Codec, s *catalog.Seal, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	type result struct {
		b   []byte
		err error
	}
	results := make([]chan result, len(s.Chunks))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	slots := make(chan struct{}, SealReaders)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, sc := range s.Chunks {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := readChunk(ctx, st, codec, s.Segment, sc.Key)
				results[i] <- result{b, err}
			}()
		}
	}()
	h := sha256.New()
	var pos int64 // bytes written: chunks may overlap
	for i, sc := range s.Chunks {
		var r result
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-slots
		if r.err != nil {
			return r.err
		}
		b := r.b[pos-sc.Start:]
		h.Write(b)
		if _, err := w.Write(b); err != nil {
			return err
		}
		pos = sc.End
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.SHA256 {
		return fmt.Errorf("%s: %w: its chunks hash to sha256 %.16s, its seal says %.16s", s.Segment, ErrCorrupt, got, s.SHA256)
	}
	return nil
}

// readChunk downloads one chunk a seal names and returns its verified
// plaintext.
func readChunk(ctx context.Context, st storage.Storage, codec *envelope.Codec, name, key string) ([]byte, error) {
	c, _ := catalog.ParseStreamChunkKey(key) // checked by UnmarshalSeal
	pr, classify, err := OpenStored(ctx, st, codec, c.Key, c.Name, c.Encrypted, c.SHA256)
	if err != nil {
		// A chunk a seal names is kept as long as the seal: gone is
		// damage, not a race to retry (OpenStored's "vanished").
		if _, serr := st.Stat(ctx, key); errors.Is(serr, storage.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w: chunk %s named by its seal is missing", name, ErrCorrupt, key)
		}
		return nil, err
	}
	defer pr.Close()
	var buf bytes.Buffer
	buf.Grow(int(c.End - c.Start))
	if _, err := buf.ReadFrom(pr); err != nil {
		return nil, classify(err)
	}
	if int64(buf.Len()) != c.End-c.Start {
		return nil, fmt.Errorf("%s chunk %d-%d: %w: holds %d bytes", name, c.Start, c.End, ErrCorrupt, buf.Len())
	}
	return buf.Bytes(), nil
}
