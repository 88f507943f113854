package stream

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
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

	jobs        chan job      // the ordered lane: chunks, marks, history files
	wholes      chan *segment // completed segments, stored whole in the background
	storedA     atomic.Uint64
	queued      atomic.Int64 // jobs on the ordered lane
	wholeQueued atomic.Int64 // segments waiting for or in their whole store
	upErr       chan error
	upDone      chan struct{}
	wholeWG     sync.WaitGroup

	progressed bool
	waited     bool // shutdown gave the uploads their grace period already
}

func (s *session) run(ctx context.Context, start pglogrepl.LSN) error {
	defer s.startLanes(ctx)()

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

// startLanes starts the ordered lane and the whole-segment lane; the
// returned stop closes both and lets queued uploads finish for up to
// laneGrace before abandoning them (the slot keeps unstored WAL for the
// next session). Waiting matters for whole segments: the stored position
// has passed them already (their chunks cover them), so the next session
// will not see them again, and an abandoned one would stay in chunks.
func (s *session) startLanes(ctx context.Context) (stop func()) {
	s.jobs = make(chan job, queuedJobs)
	s.wholes = make(chan *segment, 1)
	s.upErr = make(chan error, 2)
	s.upDone = make(chan struct{})
	s.storedA.Store(uint64(s.stored))
	upCtx, cancelUp := context.WithCancel(context.WithoutCancel(ctx))
	go s.uploader(upCtx)
	s.wholeWG.Add(1)
	go s.wholeStorer(upCtx)
	return func() {
		close(s.jobs)
		close(s.wholes)
		done := make(chan struct{})
		go func() {
			<-s.upDone
			s.wholeWG.Wait()
			close(done)
		}()
		grace := laneGrace
		if s.waited {
			grace = 0
		}
		select {
		case <-done:
		case <-time.After(grace):
			s.log.Warn().Msg("abandoning uploads still running after the session ended")
		}
		cancelUp()
		<-done
	}
}

// laneGrace bounds how long a session's end waits for its uploads.
const laneGrace = 30 * time.Second

// shutdown stores what was received before the context ended, within a
// grace period, and reports it: a stopping daemon loses nothing it has.
func (s *session) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	s.shipPending()
	s.releaseCur()
	for s.queued.Load() > 0 || s.wholeQueued.Load() > 0 {
		select {
		case err := <-s.upErr:
			return err
		case <-ctx.Done():
			s.waited = true // stop need not wait again
			s.log.Warn().Msg("stopping before all received WAL was stored; the slot keeps it for the next run")
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
	_ = s.sendStatus(true) // best effort: stopping; the slot keeps what was not acknowledged
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
		if !s.pending.IsZero() && (s.groupDue() || time.Since(s.pending) >= s.r.opts.ShipInterval) {
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
			wake := now.Add(2 * time.Millisecond)
			if g := s.pending.Add(s.r.opts.GroupDelay); g.After(wake) && s.queued.Load() == 0 {
				wake = g // nothing to report before the group is due
			}
			return wake
		}
		d = earliest(d, s.pending.Add(s.r.opts.ShipInterval))
	}
	if s.queued.Load() > 0 {
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

// groupDue says, with Synchronous, whether the pending flushes are to be
// stored now: the lane is idle (flushes arriving while a chunk is stored
// wait for it, and go out together after it) and the oldest has waited
// GroupDelay for others to join it. Each waits for its commit's WAL to be
// stored, so the server's commits wait no less: the guarantee is the same.
func (s *session) groupDue() bool {
	return s.r.opts.Synchronous && s.queued.Load() == 0 && time.Since(s.pending) >= s.r.opts.GroupDelay
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
		s.r.update(func(st *Status) { st.ServerLSN = lsn; st.trackBehind(time.Now()) })
	}
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
		st.trackBehind(now)
	})
}
