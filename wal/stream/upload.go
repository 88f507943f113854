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

// wholeStorer stores completed segments whole, then removes their chunks.
func (s *session) wholeStorer(ctx context.Context) {
	defer s.wholeWG.Done()
	failed := false
	for seg := range s.wholes {
		if !failed {
			if err := s.storeWhole(ctx, seg); err != nil {
				failed = true
				s.fail(err)
			}
		}
		s.wholeQueued.Add(-1)
	}
}

func (s *session) storeWhole(ctx context.Context, seg *segment) error {
	start := time.Now()
	res, err := s.r.upload.StoreSealedWAL(ctx, seg.name, seg.sealed)
	if err != nil {
		return err
	}
	s.uploaded(res.Stored)
	s.r.update(func(st *Status) { st.Segments++ })
	seg.chunks.Wait() // the last chunk may still be on its way
	removed := s.removeChunks(ctx, seg.name)
	s.log.Info().Str("segment", seg.name).Int64("stored", res.Stored).Bool("existed", res.Existed).
		Int("chunks_removed", removed).Dur("took", time.Since(start).Round(time.Millisecond)).Msg("wal segment streamed")
	return nil
}

// removeChunks deletes a stored segment's chunks, several at a time (with
// --synchronous a segment may have hundreds); failures only leave clutter
// that readers ignore once the segment is whole.
func (s *session) removeChunks(ctx context.Context, name string) int {
	_, chunks, err := wal.ListAll(ctx, s.r.opts.Store, name)
	if err != nil {
		return 0
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
