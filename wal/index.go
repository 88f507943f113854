package wal

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// Index is what one listing of the repository's wal/ tree knows: which
// files are archived, and when each was stored. It needs no secret key.
type Index struct {
	files     map[string]Entry  // by WAL file name
	timelines map[Timeline]bool // timelines with at least one segment
	streamed  map[string][]catalog.StreamChunk
	conflicts map[string]bool   // names stored more than once with different content
	seals     map[string]string // seal keys by segment name (the entry may be a whole copy)
}

// streamedEntry returns an entry for a segment stored only as streamed
// chunks from its first byte; Stored is when the newest chunk was stored.
func (ix *Index) streamedEntry(name string) (Entry, bool) {
	chunks := ix.streamed[name]
	use, end := Coverage(chunks)
	if end == 0 {
		return Entry{}, false
	}
	e := Entry{WALObject: catalog.WALObject{Name: name}, Partial: end}
	for _, c := range use {
		e.Size += c.Size
		if c.Stored.After(e.Stored) {
			e.Stored = c.Stored
		}
	}
	return e, true
}

// Entry is one archived file in an Index.
type Entry struct {
	catalog.WALObject
	Stored time.Time // when the store received it: no commit in it is later
	// Partial is, for a segment stored only as streamed chunks, how many
	// bytes from its start they cover; 0 for a whole file.
	Partial int64
}

// LoadIndex lists wal/ once.
func LoadIndex(ctx context.Context, st storage.Storage) (*Index, error) {
	ix := &Index{files: map[string]Entry{}, timelines: map[Timeline]bool{}, streamed: map[string][]catalog.StreamChunk{}}
	err := st.List(ctx, "wal/", func(oi storage.ObjectInfo) error {
		o, ok := catalog.ParseWALKey(oi.Key)
		if s, sealed := catalog.ParseSealKey(oi.Key); sealed {
			// A sealed segment is stored whole; a whole copy listed
			// (after it, in key order) replaces its entry.
			if ix.seals == nil {
				ix.seals = map[string]string{}
			}
			ix.seals[s.Name] = s.Key
			if _, whole := ix.files[s.Name]; whole {
				ix.noteConflict(s)
				return nil
			}
			o, ok = s, true
		}
		if !ok {
			if c, ok := catalog.ParseStreamChunkKey(oi.Key); ok {
				c.Size, c.Stored = oi.Size, oi.ModTime
				ix.streamed[c.Name] = append(ix.streamed[c.Name], c)
				if n, err := ParseName(c.Name); err == nil {
					ix.timelines[n.Timeline] = true
				}
			}
			return nil
		}
		o.Size = oi.Size
		ix.noteConflict(o)
		ix.files[o.Name] = Entry{WALObject: o, Stored: oi.ModTime}
		if n, err := ParseName(o.Name); err == nil && n.Kind == KindSegment {
			ix.timelines[n.Timeline] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list archived wal: %w", err)
	}
	// A segment whose chunks cover it completely is a whole segment (its
	// whole copy may be still uploading, or its upload failed).
	for name, chunks := range ix.streamed {
		if _, ok := ix.files[name]; ok {
			continue
		}
		if use, end := Coverage(chunks); end > 0 && end == use[0].SegSize {
			e, _ := ix.streamedEntry(name)
			e.Partial = 0
			ix.files[name] = e
		}
	}
	return ix, nil
}

// noteConflict records o's name when a copy with other content is listed
// already (two clusters pushing into one repository, or a bug): wal-fetch
// refuses such a file, so recovery cannot pass it.
func (ix *Index) noteConflict(o catalog.WALObject) {
	if prev, ok := ix.files[o.Name]; ok && prev.SHA256 != o.SHA256 {
		if ix.conflicts == nil {
			ix.conflicts = map[string]bool{}
		}
		ix.conflicts[o.Name] = true
	}
}

// Conflicts returns the names of files stored more than once with different
// SHA-256, sorted; never nil.
func (ix *Index) Conflicts() []string {
	out := make([]string, 0, len(ix.conflicts))
	for name := range ix.conflicts {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Has reports whether a file of that name is archived whole.
func (ix *Index) Has(name string) bool { _, ok := ix.files[name]; return ok }

// Get returns the entry of an archived file, or of a segment streamed in
// part (Entry.Partial > 0).
func (ix *Index) Get(name string) (Entry, bool) {
	if e, ok := ix.files[name]; ok {
		return e, true
	}
	return ix.streamedEntry(name)
}

// Timelines returns the timelines that have archived segments, ascending.
func (ix *Index) Timelines() []Timeline {
	out := make([]Timeline, 0, len(ix.timelines))
	for t := range ix.timelines {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Chain is the run of archived segments recovery can replay from a start
// segment without a gap.
type Chain struct {
	First, Last string    // segment names; Last is "" if First is missing
	LastStored  time.Time // when Last was stored: the chain reaches at least this moment
	Missing     string    // the first segment not archived after Last
	MoreAfter   bool      // segments exist beyond Missing: a gap, not the end of the archive
	// LastPartial is set when Last is a segment wal-receive stored only in
	// part: recovery replays it up to the last streamed byte, and the chain
	// ends there.
	LastPartial bool
}

// Chain follows archived segments from start. When the next segment is
// missing on the current timeline but a newer timeline has it, the chain
// continues there, as recovery with recovery_target_timeline = 'latest'
// does after a promotion (PostgreSQL copies the switch segment into the
// new timeline).
func (ix *Index) Chain(start string, segSize int64) Chain {
	n, err := ParseName(start)
	if err != nil || n.Kind != KindSegment || !ValidSegmentSize(segSize) {
		return Chain{First: start, Missing: start}
	}
	tli := n.Timeline
	segNo := n.SegNo(segSize)
	c := Chain{First: start}
	tls := ix.Timelines()
	for {
		name := SegmentFileName(tli, segNo, segSize)
		if !ix.Has(name) {
			switched := false
			for i := len(tls) - 1; i >= 0 && tls[i] > tli; i-- {
				if alt := SegmentFileName(tls[i], segNo, segSize); ix.Has(alt) {
					tli, name, switched = tls[i], alt, true
					break
				}
			}
			if !switched {
				if e, ok := ix.streamedPartial(tli, tls, segNo, segSize); ok {
					c.Last, c.LastStored, c.LastPartial = e.Name, e.Stored, true
					segNo++
					name = SegmentFileName(tli, segNo, segSize)
				}
				c.Missing = name
				c.MoreAfter = ix.anyAfter(segNo, segSize)
				return c
			}
		}
		c.Last = name
		c.LastStored = ix.files[name].Stored
		segNo++
	}
}

// streamedPartial finds segment segNo streamed in part, on tli or a newer
// timeline (newest first).
func (ix *Index) streamedPartial(tli Timeline, tls []Timeline, segNo uint64, segSize int64) (Entry, bool) {
	for i := len(tls) - 1; i >= 0 && tls[i] > tli; i-- {
		if e, ok := ix.streamedEntry(SegmentFileName(tls[i], segNo, segSize)); ok {
			return e, true
		}
	}
	return ix.streamedEntry(SegmentFileName(tli, segNo, segSize))
}

// anyAfter reports whether any segment numbered above segNo is archived, on
// any timeline.
func (ix *Index) anyAfter(segNo uint64, segSize int64) bool {
	for name := range ix.files {
		n, err := ParseName(name)
		if err == nil && n.Kind == KindSegment && n.SegNo(segSize) > segNo {
			return true
		}
	}
	return false
}

// CoversWhole reports whether the chain includes the segment with this
// number whole: a base backup's end segment must be, since a partial one
// may stop short of the backup's end.
func (c Chain) CoversWhole(name string, segSize int64) bool {
	if !c.Covers(name, segSize) {
		return false
	}
	if !c.LastPartial {
		return true
	}
	n, _ := ParseName(name)
	last, _ := ParseName(c.Last)
	return n.SegNo(segSize) < last.SegNo(segSize)
}

// Covers reports whether the chain includes the segment with this number
// (on any timeline).
func (c Chain) Covers(name string, segSize int64) bool {
	if c.Last == "" {
		return false
	}
	n, err1 := ParseName(name)
	last, err2 := ParseName(c.Last)
	first, err3 := ParseName(c.First)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	s := n.SegNo(segSize)
	return s >= first.SegNo(segSize) && s <= last.SegNo(segSize)
}

// SegmentOf returns the name of the segment holding the byte before lsn
// (for an end position) or at lsn (for a start position).
func SegmentOf(tli Timeline, lsn uint64, segSize int64, end bool) string {
	if end && lsn > 0 {
		lsn--
	}
	return SegmentFileName(tli, lsn/uint64(segSize), segSize)
}
