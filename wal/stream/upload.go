package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// job is one unit of the ordered lane's work.
type job struct {
	kind     jobKind
	seg      *segment      // chunk: its segment
	from, to int64         // chunk: bytes [from, to) of seg
	name     string        // history: file name
	data     []byte        // chunk or history: content
	storedAt pglogrepl.LSN // everything before it is stored once the job is done
}

type jobKind int

const (
	jobChunk   jobKind = iota // store data as bytes [from, to) of seg
	jobMark                   // nothing to store: advance the stored position
	jobHistory                // store a timeline history file
)

// queuedJobs bounds the ordered lane's queue: with chunks of at most
// maxPending bytes, the receive loop waits (and the server buffers) rather
// than memory growing while the store is slow.
const queuedJobs = 4

// uploader runs the ordered lane. The stored position advances only after
// a job's bytes are confirmed stored, and in order, so it never passes a
// hole.
func (s *session) uploader(ctx context.Context) {
	defer close(s.upDone)
	failed := false
	for j := range s.jobs {
		if !failed {
			if err := s.do(ctx, j); err != nil {
				failed = true
				s.fail(err)
			}
		}
		if j.seg != nil {
			j.seg.chunks.Done()
		}
		if j.kind == jobChunk && cap(j.data) <= maxPending {
			b := j.data[:0]
			chunkBufs.Put(&b)
		}
		s.queued.Add(-1)
	}
}

func (s *session) fail(err error) {
	if errors.Is(err, wal.ErrConflict) {
		err = errFatal{err}
	}
	select {
	case s.upErr <- err:
	default:
	}
}

func (s *session) do(ctx context.Context, j job) error {
	opts := s.r.opts
	start := time.Now()
	switch j.kind {
	case jobChunk:
		sealed, err := s.r.upload.Seal(j.data)
		if err != nil {
			return err
		}
		key, err := catalog.StreamChunkKey(j.seg.name, j.from, j.to, s.segSize, sealed.SHA256, opts.Codec.Encrypt)
		if err != nil {
			return err
		}
		if _, err := s.r.upload.CreateObject(ctx, key, bytes.NewReader(sealed.Body)); err != nil {
			return fmt.Errorf("store %s bytes %d-%d: %w", j.seg.name, j.from, j.to, err)
		}
		j.seg.parts = append(j.seg.parts, catalog.SealChunk{Key: key, Start: j.from, End: j.to})
		s.uploaded(int64(len(sealed.Body)))
		s.log.Debug().Str("segment", j.seg.name).Int64("from", j.from).Int64("to", j.to).
			Int("stored", len(sealed.Body)).Dur("took", time.Since(start).Round(time.Millisecond)).Msg("wal chunk streamed")
	case jobHistory:
		res, err := s.r.upload.StoreWAL(ctx, j.name, j.data)
		if err != nil {
			return err
		}
		s.uploaded(res.Stored)
		if !res.Existed {
			s.log.Info().Str("file", j.name).Msg("timeline history stored")
		}
	}
	if j.storedAt > 0 {
		s.markStored(j.storedAt)
	}
	return nil
}

// wholeStorer seals completed segments, or stores them whole.
func (s *session) wholeStorer(ctx context.Context) {
	defer s.wholeWG.Done()
	failed := false
	for seg := range s.wholes {
		if !failed {
			if err := s.finish(ctx, seg); err != nil {
				failed = true
				s.fail(err)
			}
		}
		s.wholeQueued.Add(-1)
	}
}

// MaxSealChunks is the most chunks a segment is sealed in; one in more is
// stored whole again (and its chunks removed), as wal-fetch reads a
// segment in many chunks slower than one object. Measured on the 2-core
// machine's MinIO (BenchmarkFetchSealed, medians of 3): whole 285 ms, 4
// chunks 492, 16 chunks 643, 64 chunks 1035, 256 chunks 1845. 32 seals a
// segment at the default 1 s ship interval down to 0.5 MiB/s of WAL (and
// at 200 ms down to 2.5 MiB/s); slower WAL, or --synchronous (a chunk per
// commit or group), is stored whole, where its size matters less.
const MaxSealChunks = 32

// finish stores what makes a completed segment whole to readers: a seal
// naming its chunks, or, in more than MaxSealChunks chunks, the segment
// itself under the wal-push key (its chunks then go). A copy stored
// meanwhile (wal-push from archive_command) must hold the same content.
func (s *session) finish(ctx context.Context, seg *segment) error {
	start := time.Now()
	seg.chunks.Wait() // the last chunk may still be on its way
	st := s.r.upload.Store()
	existing, _, err := wal.ListAll(ctx, st, seg.name)
	if err != nil {
		return fmt.Errorf("check repository for %s: %w", seg.name, err)
	}
	whole := false
	for _, o := range existing {
		if o.SHA256 != seg.sealed.SHA256 {
			return fmt.Errorf("%s %w (stored sha256 %.16s, received %.16s); refusing to overwrite", seg.name, wal.ErrConflict, o.SHA256, seg.sealed.SHA256)
		}
		whole = whole || !o.Seal
	}
	var stored int64
	existed := whole // then its chunks are clutter
	switch {
	case whole:
	case len(existing) > 0: // sealed already (an earlier run)
		s.r.update(func(st *Status) { st.Segments++ })
		return nil
	case len(seg.parts) <= MaxSealChunks && coversAll(seg.parts, s.segSize):
		seal := &catalog.Seal{Format: catalog.FormatVersion, Segment: seg.name, SegSize: s.segSize, SHA256: seg.sealed.SHA256, Chunks: seg.parts}
		key, err := catalog.SealKey(seg.name, seal.SHA256)
		if err != nil {
			return err
		}
		body := catalog.MarshalSeal(seal)
		if _, err := s.r.upload.CreateObject(ctx, key, bytes.NewReader(body)); err != nil {
			return fmt.Errorf("store seal of %s: %w", seg.name, err)
		}
		s.uploaded(int64(len(body)))
		s.r.update(func(st *Status) { st.Segments++ })
		s.log.Info().Str("segment", seg.name).Int("chunks", len(seg.parts)).Int("stored", len(body)).Int("whole", len(seg.sealed.Body)).
			Dur("took", time.Since(start).Round(time.Millisecond)).Msg("wal segment sealed")
		return nil
	default:
		r, err := s.r.upload.StoreSealedWAL(ctx, seg.name, seg.sealed)
		if err != nil {
			return err
		}
		stored, existed = r.Stored, r.Existed
		s.uploaded(r.Stored)
	}
	s.r.update(func(st *Status) { st.Segments++ })
	removed := s.removeChunks(ctx, seg.name)
	s.log.Info().Str("segment", seg.name).Int64("stored", stored).Bool("existed", existed).
		Int("chunks_removed", removed).Dur("took", time.Since(start).Round(time.Millisecond)).Msg("wal segment streamed")
	return nil
}

// coversAll reports whether parts cover a segment of segSize from byte 0,
// as catalog.UnmarshalSeal requires.
func coversAll(parts []catalog.SealChunk, segSize int64) bool {
	var end int64
	for _, p := range parts {
		if p.Start > end || p.End <= end {
			return false
		}
		end = p.End
	}
	return end == segSize
}

// removeChunks deletes the chunks (and any seal) of a segment stored
// whole, several at a time (with --synchronous a segment may have
// hundreds); failures only leave clutter that readers ignore once the
// segment is whole.
func (s *session) removeChunks(ctx context.Context, name string) int {
	objs, chunks, err := wal.ListAll(ctx, s.r.opts.Store, name)
	if err != nil {
		return 0
	}
	for _, o := range objs {
		if o.Seal { // first: a seal must not outlive its chunks
			if s.r.opts.Store.Delete(ctx, o.Key) != nil {
				return 0
			}
		}
	}
	var n atomic.Int64
	var g errgroup.Group
	g.SetLimit(8)
	for _, c := range chunks {
		g.Go(func() error {
			err := s.r.opts.Store.Delete(ctx, c.Key)
			if err == nil {
				n.Add(1)
			} else if errors.Is(err, storage.ErrPermanent) && s.r.deleteRefused.CompareAndSwap(false, true) {
				// Credentials that cannot delete (the database host's, see
				// docs/STORAGE.md): say so once, not once a segment.
				s.log.Warn().Err(err).Msg("storage refuses to delete streamed chunks; pitr retain removes them")
			}
			return nil
		})
	}
	_ = g.Wait() // the goroutines return nil; failures only leave clutter
	return int(n.Load())
}
