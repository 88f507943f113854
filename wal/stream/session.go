package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/retry"
	"github.com/pitr-dev/pitr/wal"
)

// segment is the segment being received.
type segment struct {
	name    string
	start   pglogrepl.LSN // LSN of byte 0
	buf     []byte
	have    int64          // bytes received, from byte 0
	shipped int64          // bytes stored or queued for storing, from byte 0
	whole   bool           // the repository holds the whole segment already
	refs    atomic.Int32   // holders of buf: the receive loop and queued jobs
	chunks  sync.WaitGroup // chunk jobs not yet done
}

// job is one unit of the uploader's ordered work.
type job struct {
	kind     jobKind
	seg      *segment
	from     int64         // chunk: bytes [from, to) of seg
	to       int64         //
	name     string        // history: file name
	data     []byte        // history: content
	storedAt pglogrepl.LSN // everything before it is stored once the job is done
}

type jobKind int

const (
	jobChunk   jobKind = iota // store seg.buf[from:to] as a chunk
	jobMark                   // nothing to store: advance the stored position
	jobHistory                // store a timeline history file
)

type session struct {
	r       *Receiver
	conn    *pgconn.PgConn
	log     *zerolog.Logger
	segSize int64
	tli     uint32

	cur      *segment
	recv     pglogrepl.LSN // end of WAL received
	server   pglogrepl.LSN // server's flush position, last heard
	stored   pglogrepl.LSN // owned by the receive loop: last value read from storedA
	reported pglogrepl.LSN // flush position last sent
	lastSent time.Time
	pending  time.Time // when the oldest unshipped byte arrived; zero if none

	jobs     chan job      // the ordered lane: chunks, marks, history files
	wholes   chan *segment // completed segments, stored whole in the background
	free     chan []byte
	bufs     int
	storedA  atomic.Uint64
	inflight atomic.Int64
	upErr    chan error
	upDone   chan struct{}
	wholeWG  sync.WaitGroup

	progressed bool
}

// buffers is how many segment buffers a session may hold: one receiving,
// one being stored whole.
const buffers = 2

func (s *session) run(ctx context.Context, start pglogrepl.LSN) error {
	s.jobs = make(chan job, 256)
	s.wholes = make(chan *segment, buffers)
	s.free = make(chan []byte, buffers)
	s.upErr = make(chan error, 2)
	s.upDone = make(chan struct{})
	s.storedA.Store(uint64(s.stored))
	upCtx, cancelUp := context.WithCancel(context.WithoutCancel(ctx))
	go s.uploader(upCtx)
	s.wholeWG.Add(1)
	go s.wholeStorer(upCtx)
	defer func() {
		close(s.jobs)
		close(s.wholes)
		cancelUp()
		<-s.upDone
		s.wholeWG.Wait()
	}()

	if err := s.ensureHistory(ctx, s.tli); err != nil {
		return err
	}
	for {
		next, nextStart, err := s.streamTimeline(ctx, start)
		if err != nil {
			if ctx.Err() != nil {
				return s.shutdown(ctx)
			}
			return err
		}
		s.log.Info().Uint32("timeline", s.tli).Uint32("next_timeline", next).Str("switch", nextStart.String()).Msg("timeline ended; following the new timeline")
		if err := s.ensureHistory(ctx, next); err != nil {
			return err
		}
		s.tli = next
		s.r.update(func(st *Status) { st.Timeline = next })
		start = nextStart - pglogrepl.LSN(uint64(nextStart)%uint64(s.segSize))
	}
}

// shutdown stores what was received before the context ended, within a
// grace period, and reports it: a stopping daemon loses nothing it has.
func (s *session) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	s.shipPending()
	s.releaseCur()
	for s.inflight.Load() > 0 {
		select {
		case err := <-s.upErr:
			return err
		case <-ctx.Done():
			s.log.Warn().Msg("stopping before all received WAL was stored; the slot keeps it for the next run")
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.sendStatus(true)
	st := s.r.Status()
	s.log.Info().Str("stored", s.stored.String()).Int64("wal_bytes", st.WALBytes).Int64("uploaded", st.UploadedBytes).
		Int64("segments", st.Segments).Msg("wal streaming stopped")
	return nil
}

// streamTimeline streams timeline s.tli from start until the timeline ends
// (returning the next one) or an error.
func (s *session) streamTimeline(ctx context.Context, start pglogrepl.LSN) (uint32, pglogrepl.LSN, error) {
	err := pglogrepl.StartReplication(ctx, s.conn, s.r.opts.Slot, start, pglogrepl.StartReplicationOptions{
		Timeline: int32(s.tli), Mode: pglogrepl.PhysicalReplication,
	})
	if next, at, ok := pglogrepl.IsErrEndTimeline(err); ok {
		return uint32(next), at, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("start replication at %s on timeline %d: %w", start, s.tli, err)
	}
	s.recv = start
	s.lastSent = time.Now()
	for {
		if err := s.uploaderFailed(); err != nil {
			return 0, 0, err
		}
		s.advanceStored()
		if !s.pending.IsZero() && (s.r.opts.Synchronous && s.inflight.Load() == 0 || time.Since(s.pending) >= s.r.opts.ShipInterval) {
			s.shipPending()
		}
		if s.stored > s.reported || time.Since(s.lastSent) >= statusInterval {
			if err := s.sendStatus(false); err != nil {
				return 0, 0, err
			}
		}

		rctx, cancel := context.WithDeadline(ctx, s.deadline())
		msg, err := s.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && pgconn.Timeout(err) {
				continue
			}
			return 0, 0, fmt.Errorf("receive wal: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, m.Data); err != nil {
				return 0, 0, err
			}
		case *pgproto3.CopyDone:
			return s.endTimeline(ctx)
		case *pgproto3.ErrorResponse:
			return 0, 0, fmt.Errorf("receive wal: %w", pgconn.ErrorResponseToPgError(m))
		}
	}
}

// deadline is when the receive loop must wake up even without a message.
func (s *session) deadline() time.Time {
	now := time.Now()
	d := s.lastSent.Add(statusInterval)
	if !s.pending.IsZero() {
		if s.r.opts.Synchronous {
			return now.Add(2 * time.Millisecond)
		}
		d = earliest(d, s.pending.Add(s.r.opts.ShipInterval))
	}
	if s.inflight.Load() > 0 {
		// Report stored WAL promptly: it moves the slot, and with
		// synchronous replication it releases waiting commits.
		wake := 100 * time.Millisecond
		if s.r.opts.Synchronous {
			wake = 2 * time.Millisecond
		}
		d = earliest(d, now.Add(wake))
	}
	return d
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (s *session) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return err
		}
		s.noteServer(k.ServerWALEnd)
		if k.ReplyRequested {
			return s.sendStatus(true)
		}
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return err
		}
		s.noteServer(x.ServerWALEnd)
		return s.receive(ctx, x.WALStart, x.WALData)
	}
	return nil
}

func (s *session) noteServer(lsn pglogrepl.LSN) {
	if lsn > s.server {
		s.server = lsn
		s.r.update(func(st *Status) { st.ServerLSN = lsn })
	}
}

// receive copies WAL at pos into segment buffers; data is only valid until
// the next message is read.
func (s *session) receive(ctx context.Context, pos pglogrepl.LSN, data []byte) error {
	if pos > s.recv {
		return fmt.Errorf("wal stream skipped from %s to %s", s.recv, pos)
	}
	if skip := uint64(s.recv - pos); skip > 0 { // already have it
		if skip >= uint64(len(data)) {
			return nil
		}
		data, pos = data[skip:], s.recv
	}
	s.r.update(func(st *Status) { st.WALBytes += int64(len(data)) })
	for len(data) > 0 {
		if s.cur == nil {
			if err := s.open(ctx, pos); err != nil {
				return err
			}
		}
		off := int64(pos - s.cur.start)
		n := copy(s.cur.buf[off:], data)
		s.cur.have = off + int64(n)
		pos += pglogrepl.LSN(n)
		data = data[n:]
		if s.cur.shipped < s.cur.have && s.pending.IsZero() {
			s.pending = time.Now()
		}
		if s.cur.have == s.segSize {
			s.complete()
		}
	}
	s.recv = pos
	return nil
}

// open starts the segment holding pos (pos is its first byte, or a
// position inside it the repository has the bytes before).
func (s *session) open(ctx context.Context, pos pglogrepl.LSN) error {
	segNo := uint64(pos) / uint64(s.segSize)
	seg := &segment{
		name:  wal.SegmentFileName(wal.Timeline(s.tli), segNo, s.segSize),
		start: pglogrepl.LSN(segNo * uint64(s.segSize)),
	}
	if pos != seg.start {
		return fmt.Errorf("wal stream starts inside segment %s at %s", seg.name, pos)
	}
	full, err := wal.ListWAL(ctx, s.r.opts.Store, seg.name)
	if err != nil {
		return fmt.Errorf("list %s: %w", seg.name, err)
	}
	if len(full) > 0 {
		seg.whole, seg.shipped = true, s.segSize
	} else {
		chunks, err := wal.ListStream(ctx, s.r.opts.Store, seg.name)
		if err != nil {
			return fmt.Errorf("list %s: %w", seg.name, err)
		}
		if _, end := wal.Coverage(chunks); end > 0 {
			seg.shipped = end
			s.enqueue(job{kind: jobMark, storedAt: seg.start + pglogrepl.LSN(end)})
		}
	}
	buf, err := s.buffer(ctx)
	if err != nil {
		return err
	}
	seg.buf = buf
	seg.refs.Store(1) // the receive loop's
	s.cur = seg
	return nil
}

// buffer returns a free segment buffer, waiting for the uploader to
// release one when both are in use.
func (s *session) buffer(ctx context.Context) ([]byte, error) {
	select {
	case b := <-s.free:
		return b, nil
	default:
	}
	if s.bufs < buffers {
		s.bufs++
		return make([]byte, s.segSize), nil
	}
	select {
	case b := <-s.free:
		return b, nil
	case err := <-s.upErr:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// complete finishes the segment: its last bytes go out as a chunk on the
// ordered lane, so the stored position passes the segment at once, and the
// whole segment is stored in the background under the wal-push key. Chunks
// covering a segment completely are a whole segment to readers, so the
// stored position need not wait for that upload (150-600 ms, which held up
// every chunk queued behind it and, with --synchronous, every commit).
func (s *session) complete() {
	seg := s.cur
	s.cur, s.pending = nil, time.Time{}
	end := seg.start + pglogrepl.LSN(s.segSize)
	if seg.whole {
		s.enqueue(job{kind: jobMark, storedAt: end})
		s.drop(seg)
		return
	}
	if seg.shipped < s.segSize {
		s.enqueueChunk(seg, s.segSize, end)
	}
	s.hold(seg)
	s.inflight.Add(1)
	s.wholes <- seg
	s.drop(seg)
}

func (s *session) hold(seg *segment) { seg.refs.Add(1) }

// drop releases one hold on seg's buffer; the last returns it to the pool.
func (s *session) drop(seg *segment) {
	if seg.refs.Add(-1) == 0 {
		select {
		case s.free <- seg.buf:
		default:
		}
	}
}

// shipPending queues the current segment's unstored bytes as a chunk.
func (s *session) shipPending() {
	s.pending = time.Time{}
	seg := s.cur
	if seg == nil || seg.shipped >= seg.have {
		return
	}
	s.enqueueChunk(seg, seg.have, seg.start+pglogrepl.LSN(seg.have))
}

// enqueueChunk queues seg's bytes from what is shipped to `to`.
func (s *session) enqueueChunk(seg *segment, to int64, storedAt pglogrepl.LSN) {
	s.hold(seg)
	seg.chunks.Add(1)
	s.enqueue(job{kind: jobChunk, seg: seg, from: seg.shipped, to: to, storedAt: storedAt})
	seg.shipped = to
}

// releaseCur gives up the current segment (its stored chunks stay).
func (s *session) releaseCur() {
	if s.cur != nil {
		s.drop(s.cur)
		s.cur, s.pending = nil, time.Time{}
	}
}

func (s *session) enqueue(j job) {
	s.inflight.Add(1)
	s.jobs <- j
}

// endTimeline finishes the copy after the server ended the timeline and
// returns the next timeline and where it starts.
func (s *session) endTimeline(ctx context.Context) (uint32, pglogrepl.LSN, error) {
	s.shipPending()
	s.releaseCur()
	res, err := pglogrepl.SendStandbyCopyDone(ctx, s.conn)
	if err != nil {
		return 0, 0, fmt.Errorf("end of timeline %d: %w", s.tli, err)
	}
	if res == nil || res.Timeline <= 0 || uint32(res.Timeline) <= s.tli {
		return 0, 0, fmt.Errorf("end of timeline %d: the server named no newer timeline", s.tli)
	}
	return uint32(res.Timeline), res.LSN, nil
}

// ensureHistory stores timeline tli's history file (timeline 1 has none).
func (s *session) ensureHistory(ctx context.Context, tli uint32) error {
	if tli <= 1 {
		return nil
	}
	h, err := pglogrepl.TimelineHistory(ctx, s.conn, int32(tli))
	if err != nil {
		return fmt.Errorf("timeline history %d: %w", tli, err)
	}
	name := fmt.Sprintf("%08X.history", tli)
	if h.FileName != name {
		return fmt.Errorf("timeline history %d: server sent %q", tli, h.FileName)
	}
	s.enqueue(job{kind: jobHistory, name: name, data: bytes.Clone(h.Content)})
	return nil
}

func (s *session) uploaderFailed() error {
	select {
	case err := <-s.upErr:
		return err
	default:
		return nil
	}
}

func (s *session) advanceStored() {
	if v := pglogrepl.LSN(s.storedA.Load()); v > s.stored {
		s.stored = v
		s.progressed = true
	}
}

// sendStatus reports received WAL as written and stored WAL as flushed and
// applied. The flush position is set explicitly: pglogrepl would turn a
// zero into the write position, and the slot would release unstored WAL.
func (s *session) sendStatus(force bool) error {
	s.advanceStored()
	if !force && s.stored <= s.reported && time.Since(s.lastSent) < statusInterval {
		return nil
	}
	write := max(s.recv, s.stored)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: write, WALFlushPosition: s.stored, WALApplyPosition: s.stored,
	})
	if err != nil {
		return fmt.Errorf("send feedback: %w", err)
	}
	s.reported, s.lastSent = s.stored, time.Now()
	return nil
}

// uploader stores jobs in order; the stored position advances only after
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
			s.drop(j.seg)
		}
		s.inflight.Add(-1)
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
		s.drop(seg)
		s.inflight.Add(-1)
	}
}

func (s *session) storeWhole(ctx context.Context, seg *segment) error {
	start := time.Now()
	var res wal.StoreResult
	err := retry.Do(ctx, s.retryPolicy(), func(ctx context.Context) error {
		var err error
		res, err = wal.StoreBytes(ctx, s.r.opts.Store, s.r.opts.Codec, seg.name, seg.buf)
		if errors.Is(err, wal.ErrConflict) {
			return retry.Permanent(err)
		}
		return err
	}, s.onRetry)
	if err != nil {
		return err
	}
	s.uploaded(res.Stored)
	s.r.update(func(st *Status) { st.Segments++ })
	seg.chunks.Wait() // the tail chunk may still be on its way
	removed := s.removeChunks(ctx, seg.name)
	s.log.Info().Str("segment", seg.name).Int64("stored", res.Stored).Bool("existed", res.Existed).
		Int("chunks_removed", removed).Dur("took", time.Since(start)).Msg("wal segment streamed")
	return nil
}

func (s *session) retryPolicy() retry.Policy {
	return retry.Policy{Timeout: s.r.opts.MaxBackoff, Initial: 200 * time.Millisecond, Max: 5 * time.Second}
}

func (s *session) onRetry(err error, wait time.Duration) {
	s.log.Warn().Err(err).Dur("retry_in", wait).Msg("storing streamed wal failed; retrying")
}

func (s *session) do(ctx context.Context, j job) error {
	opts := s.r.opts
	start := time.Now()
	switch j.kind {
	case jobChunk:
		sealed, err := wal.Seal(opts.Codec, j.seg.buf[j.from:j.to])
		if err != nil {
			return err
		}
		key, err := catalog.StreamChunkKey(j.seg.name, j.from, j.to, s.segSize, sealed.SHA256, opts.Codec.Encrypt)
		if err != nil {
			return err
		}
		err = retry.Do(ctx, s.retryPolicy(), func(ctx context.Context) error {
			return opts.Store.Put(ctx, key, bytes.NewReader(sealed.Body))
		}, s.onRetry)
		if err != nil {
			return fmt.Errorf("store %s bytes %d-%d: %w", j.seg.name, j.from, j.to, err)
		}
		s.uploaded(int64(len(sealed.Body)))
		s.log.Debug().Str("segment", j.seg.name).Int64("from", j.from).Int64("to", j.to).
			Int("stored", len(sealed.Body)).Dur("took", time.Since(start)).Msg("wal chunk streamed")
	case jobHistory:
		var res wal.StoreResult
		err := retry.Do(ctx, s.retryPolicy(), func(ctx context.Context) error {
			var err error
			res, err = wal.StoreBytes(ctx, opts.Store, opts.Codec, j.name, j.data)
			if errors.Is(err, wal.ErrConflict) {
				return retry.Permanent(err)
			}
			return err
		}, s.onRetry)
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

// removeChunks deletes a stored segment's chunks, several at a time (with
// --synchronous a segment may have hundreds); failures only leave clutter
// that readers ignore once the segment is whole.
func (s *session) removeChunks(ctx context.Context, name string) int {
	chunks, err := wal.ListStream(ctx, s.r.opts.Store, name)
	if err != nil {
		return 0
	}
	var n atomic.Int64
	var g errgroup.Group
	g.SetLimit(8)
	for _, c := range chunks {
		g.Go(func() error {
			if s.r.opts.Store.Delete(ctx, c.Key) == nil {
				n.Add(1)
			}
			return nil
		})
	}
	g.Wait()
	return int(n.Load())
}

func (s *session) uploaded(n int64) {
	s.r.update(func(st *Status) { st.UploadedBytes += n })
}

func (s *session) markStored(lsn pglogrepl.LSN) {
	if uint64(lsn) <= s.storedA.Load() {
		return
	}
	s.storedA.Store(uint64(lsn))
	now := time.Now()
	s.r.update(func(st *Status) {
		if lsn > st.StoredLSN {
			st.StoredLSN, st.StoredAt = lsn, now
		}
	})
}
