package wal

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"

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

// listing is everything stored under one WAL name's prefix.
type listing struct {
	full   []catalog.WALObject
	chunks []catalog.StreamChunk
}

func list(ctx context.Context, st storage.Storage, name string) (listing, error) {
	prefix, err := catalog.WALPrefix(name)
	if err != nil {
		return listing{}, err
	}
	var l listing
	err = st.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if o, ok := catalog.ParseWALKey(oi.Key); ok && o.Name == name {
			o.Size = oi.Size
			l.full = append(l.full, o)
		} else if c, ok := catalog.ParseStreamChunkKey(oi.Key); ok && c.Name == name {
			c.Size = oi.Size
			l.chunks = append(l.chunks, c)
		}
		return nil
	})
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

// fetchStreamed assembles segment name from its chunks into dest, padded
// with zeros to the segment size. It returns ErrNotFound when the chunks do
// not start at byte 0.
func fetchStreamed(ctx context.Context, st storage.Storage, codec *envelope.Codec, name string, chunks []catalog.StreamChunk, dest string) (int64, error) {
	use, end := Coverage(chunks)
	if end == 0 {
		return 0, fmt.Errorf("%s: %w (streamed chunks do not start at the segment's beginning)", name, ErrNotFound)
	}
	segSize := use[0].SegSize
	return writeAtomic(dest, name, func(f *os.File) (int64, error) {
		var pos int64
		for _, c := range use {
			if err := copyChunk(ctx, st, codec, c, pos, f); err != nil {
				return 0, err
			}
			pos = c.End
		}
		return segSize, f.Truncate(segSize)
	})
}

// copyChunk writes chunk c's bytes from segment offset pos on to w, after
// verifying the whole chunk.
func copyChunk(ctx context.Context, st storage.Storage, codec *envelope.Codec, c catalog.StreamChunk, pos int64, w io.Writer) error {
	pr, classify, err := openStored(ctx, st, codec, c.Key, c.Name, c.Encrypted, c.SHA256)
	if err != nil {
		return err
	}
	defer pr.Close()
	// Read the whole chunk (it is small): the SHA-256 check runs at EOF,
	// and nothing unverified may reach the destination's final bytes.
	b, err := io.ReadAll(pr)
	if err != nil {
		return classify(err)
	}
	if int64(len(b)) != c.End-c.Start {
		return fmt.Errorf("%s chunk %d-%d: %w: holds %d bytes", c.Name, c.Start, c.End, errCorrupt, len(b))
	}
	_, err = w.Write(b[pos-c.Start:])
	return err
}
