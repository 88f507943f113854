package archive

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// fetchStreamed assembles segment name from its chunks into dest, padded
// with zeros to the segment size. It returns ErrNotFound when the chunks do
// not start at byte 0.
func fetchStreamed(ctx context.Context, st storage.Storage, codec *envelope.Codec, name string, chunks []catalog.StreamChunk, dest string) (int64, error) {
	use, end := wal.Coverage(chunks)
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
	pr, classify, err := wal.OpenStored(ctx, st, codec, c.Key, c.Name, c.Encrypted, c.SHA256)
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
		return fmt.Errorf("%s chunk %d-%d: %w: holds %d bytes", c.Name, c.Start, c.End, wal.ErrCorrupt, len(b))
	}
	_, err = w.Write(b[pos-c.Start:])
	return err
}

// fetchSealed writes the segment sealed under o.Key to dest from its
// chunks (wal.CopySealed verifies each and the whole against the SHA-256
// in the seal's key). The chunks listed with it are used when they cover
// the segment, which saves reading the seal (a round trip per segment);
// else the seal says which chunks it needs.
func fetchSealed(ctx context.Context, st storage.Storage, codec *envelope.Codec, o catalog.WALObject, chunks []catalog.StreamChunk, dest string) (int64, error) {
	var s *catalog.Seal
	if use, end := wal.Coverage(chunks); end > 0 && end == use[0].SegSize {
		s = &catalog.Seal{Format: catalog.FormatVersion, Segment: o.Name, SegSize: end, SHA256: o.SHA256}
		for _, c := range use {
			s.Chunks = append(s.Chunks, catalog.SealChunk{Key: c.Key, Start: c.Start, End: c.End})
		}
	} else {
		var err error
		if s, err = wal.ReadSeal(ctx, st, o.Key); err != nil {
			return 0, err
		}
	}
	return writeAtomic(dest, o.Name, func(f *os.File) (int64, error) {
		w := bufio.NewWriterSize(f, 1<<20)
		if err := wal.CopySealed(ctx, st, codec, s, w); err != nil {
			return 0, err
		}
		return s.SegSize, w.Flush()
	})
}
