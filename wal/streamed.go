package wal

import (
	"context"
	"errors"
	"sort"

	"github.com/pitr-dev/pitr/internal/catalog"
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

// ListWAL returns the stored objects for one WAL file name.
func ListWAL(ctx context.Context, st storage.Storage, name string) ([]catalog.WALObject, error) {
	l, err := list(ctx, st, name)
	return l.full, err
}

// ErrConflict is wrapped when the repository already holds different
// content under a WAL file name. Nothing stored is ever overwritten.
var ErrConflict = errors.New("already archived with different content")
