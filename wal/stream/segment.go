package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/wal"
)

// segment is the segment being received. It keeps no copy of the segment:
// received bytes go straight into the whole segment's sealer (zstd and age,
// a few MiB of compressed output) and, from the first byte the repository
// lacks, into pend until they are shipped as a chunk. That bounds memory
// by the compressed segment and one ship interval of WAL, not by two
// 16 MiB segment buffers.
type segment struct {
	name    string
	start   pglogrepl.LSN // LSN of byte 0
	have    int64         // bytes received, from byte 0
	shipped int64         // bytes stored or queued as chunks, from byte 0
	whole   bool          // the repository holds the whole segment already
	pend    []byte        // bytes [shipped, have)

	sealer *envelope.Sealer // nil when whole
	body   *bytes.Buffer    // the sealer's output
	sealed repo.Sealed      // set by complete

	// checks are the stored copies of this segment's bytes (its whole
	// object, or the chunks covering its start) that the repository had
	// when the segment was opened. What arrives must hash the same before
	// the stored position moves past them: a repository shared by mistake
	// with another cluster must not pass for this one's WAL.
	checks []*check

	chunks sync.WaitGroup // chunk jobs not yet done
	// parts are the stored chunks covering the segment from byte 0, in
	// order: those found at open, then each one the ordered lane stored
	// (its goroutine only, read after chunks.Wait). The seal lists them.
	parts []catalog.SealChunk
}

// check hashes the received bytes [start, end) of a segment to compare
// them with the SHA-256 of a stored copy (from its key: no secret key
// needed).
type check struct {
	start, end int64
	sha        string
	h          hash.Hash
}

// verify feeds piece, the segment's bytes from offset off, to the checks,
// and queues the stored position past each check that matches (checks end
// in increasing order: wal.Coverage picks them so).
func (s *session) verify(seg *segment, off int64, piece []byte) error {
	end := off + int64(len(piece))
	for _, c := range seg.checks {
		if c.start < end && c.end > off {
			c.h.Write(piece[max(c.start-off, 0):min(c.end-off, int64(len(piece)))])
		}
	}
	for len(seg.checks) > 0 && seg.checks[0].end <= end {
		c := seg.checks[0]
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.sha {
			return errFatal{fmt.Errorf("%s bytes %d-%d: %w: the repository holds sha256 %.16s, the server sent %.16s (is another cluster writing to this repository?)",
				seg.name, c.start, c.end, wal.ErrConflict, c.sha, got)}
		}
		seg.checks = seg.checks[1:]
		s.enqueue(job{kind: jobMark, storedAt: seg.start + pglogrepl.LSN(c.end)})
	}
	return nil
}

// maxPending ships the unshipped bytes early once there are this many (a
// receiver catching up gets WAL far faster than one interval's worth).
const maxPending = 4 << 20

// receive takes WAL at pos; data is only valid until the next message is
// read.
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
		seg := s.cur
		n := min(int64(len(data)), s.segSize-seg.have)
		piece := data[:n]
		if err := s.verify(seg, seg.have, piece); err != nil {
			return err
		}
		if seg.sealer != nil {
			if _, err := seg.sealer.Write(piece); err != nil {
				return fmt.Errorf("seal %s: %w", seg.name, err)
			}
		}
		if end := seg.have + n; end > seg.shipped {
			from := max(seg.shipped-seg.have, 0)
			seg.pend = append(seg.pend, piece[from:]...)
			if s.pending.IsZero() {
				s.pending = time.Now()
			}
		}
		seg.have += n
		pos += pglogrepl.LSN(n)
		data = data[n:]
		if seg.have == s.segSize {
			if err := s.complete(); err != nil {
				return err
			}
		} else if len(seg.pend) >= maxPending {
			s.shipPending()
		}
	}
	s.recv = pos
	return nil
}

// open starts the segment whose first byte is pos, after asking the
// repository what it has of it.
func (s *session) open(ctx context.Context, pos pglogrepl.LSN) error {
	segNo := uint64(pos) / uint64(s.segSize)
	seg := &segment{
		name:  wal.SegmentFileName(wal.Timeline(s.tli), segNo, s.segSize),
		start: pglogrepl.LSN(segNo * uint64(s.segSize)),
	}
	if pos != seg.start {
		return fmt.Errorf("wal stream starts inside segment %s at %s", seg.name, pos)
	}
	full, chunks, err := wal.ListAll(ctx, s.r.opts.Store, seg.name)
	if err != nil {
		return fmt.Errorf("list %s: %w", seg.name, err)
	}
	if len(full) > 0 {
		seg.whole, seg.shipped = true, s.segSize
		seg.checks = []*check{{start: 0, end: s.segSize, sha: full[0].SHA256, h: sha256.New()}}
		s.cur = seg
		return nil
	}
	use, end := wal.Coverage(chunks)
	seg.shipped = end
	for _, c := range use {
		seg.checks = append(seg.checks, &check{start: c.Start, end: c.End, sha: c.SHA256, h: sha256.New()})
		seg.parts = append(seg.parts, catalog.SealChunk{Key: c.Key, Start: c.Start, End: c.End})
	}
	seg.body = bytes.NewBuffer(make([]byte, 0, 1<<20))
	if seg.sealer, err = s.r.opts.Codec.Seal(seg.body); err != nil {
		return err
	}
	s.cur = seg
	return nil
}

// complete finishes the segment: its last bytes go out as a chunk on the
// ordered lane, so the stored position passes the segment at once, and the
// segment is sealed (or, in very many chunks, stored whole) in the
// background (finish). Chunks covering a segment completely are a whole
// segment to readers, so the stored position need not wait for that
// (a whole upload took 150-600 ms, which held up every chunk queued behind
// it and, with --synchronous, every commit).
func (s *session) complete() error {
	seg := s.cur
	if seg.whole { // verified and marked stored by verify
		s.cur, s.pending = nil, time.Time{}
		return nil
	}
	s.shipPending()
	s.cur = nil
	if err := seg.sealer.Close(); err != nil {
		return fmt.Errorf("seal %s: %w", seg.name, err)
	}
	seg.sealed = repo.Sealed{SHA256: seg.sealer.Sum(), Bytes: seg.sealer.Size(), Body: seg.body.Bytes()}
	seg.sealer, seg.body = nil, nil
	s.wholeQueued.Add(1)
	s.wholes <- seg
	return nil
}

// shipPending queues the current segment's unstored bytes as a chunk.
func (s *session) shipPending() {
	s.pending = time.Time{}
	seg := s.cur
	if seg == nil || len(seg.pend) == 0 {
		return
	}
	seg.chunks.Add(1)
	s.enqueue(job{kind: jobChunk, seg: seg, from: seg.shipped, to: seg.have, data: seg.pend,
		storedAt: seg.start + pglogrepl.LSN(seg.have)})
	seg.shipped, seg.pend = seg.have, (*chunkBufs.Get().(*[]byte))[:0]
}

// releaseCur gives up the current segment (its stored chunks stay).
func (s *session) releaseCur() {
	if s.cur != nil && s.cur.sealer != nil {
		s.cur.sealer.Close() // returns its encoder to the pool
	}
	s.cur, s.pending = nil, time.Time{}
}

func (s *session) enqueue(j job) {
	s.queued.Add(1)
	s.jobs <- j
}

// chunkBufs recycles pending-chunk buffers: with --synchronous there is a
// chunk per commit.
var chunkBufs = sync.Pool{New: func() any { return new([]byte) }}
