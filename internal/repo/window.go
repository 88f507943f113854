package repo

import (
	"context"
	"sort"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/wal"
)

// Window is a span of time to any moment of which the repository can
// restore: from a backup's end (its consistency point) to the last
// contiguous archived WAL after it.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Usability is what the archived WAL allows for one backup.
type Usability struct {
	Backup *catalog.Backup
	Chain  wal.Chain
	// Usable: the WAL from the backup's start to its end is archived, no
	// segment on its chain is in conflict, and its parts are all stored.
	Usable bool
	// Conflict is the first segment on the chain stored twice with
	// different content: wal-fetch refuses it, so recovery cannot pass it.
	Conflict string
	Parts    string // what is wrong with the stored parts (Backups.Check), e.g. "part missing: base.tar"
}

// Check follows each backup's WAL chain in the index.
func Check(backups []*catalog.Backup, ix *wal.Index) []Usability {
	conflicts := ix.Conflicts()
	out := make([]Usability, len(backups))
	for i, b := range backups {
		// Consistency needs the backup's own timeline; the window may then
		// follow later timelines, as recovery to 'latest' does.
		c := ix.Chain(b.StartWAL, b.WALSegmentSize)
		u := Usability{Backup: b, Chain: c, Usable: true}
		if own := ix.OwnChain(b.StartWAL, b.WALSegmentSize); !own.CoversWhole(b.EndWAL, b.WALSegmentSize) {
			u.Chain, u.Usable = own, false
		}
		u.Conflict = ConflictOn(conflicts, b, c)
		if u.Conflict != "" {
			u.Usable = false
		}
		out[i] = u
	}
	return out
}

// ConflictOn returns the first conflicting segment the chain passes: numbered
// from its first to its last segment, on a timeline from the first's to
// the last's.
func ConflictOn(conflicts []string, b *catalog.Backup, c wal.Chain) string {
	if c.Last == "" {
		return ""
	}
	first, err1 := wal.ParseName(c.First)
	last, err2 := wal.ParseName(c.Last)
	if err1 != nil || err2 != nil {
		return ""
	}
	for _, name := range conflicts {
		n, err := wal.ParseName(name)
		if err != nil || n.Kind != wal.KindSegment || n.Timeline < first.Timeline || n.Timeline > last.Timeline {
			continue
		}
		if c.Covers(name, b.WALSegmentSize) {
			return name
		}
	}
	return ""
}

// Windows merges the recoverable spans of usable backups, oldest first;
// never nil.
func Windows(us []Usability) []Window {
	var ws []Window
	for _, u := range us {
		if !u.Usable {
			continue
		}
		w := Window{From: u.Backup.EndTime, To: u.Chain.LastStored}
		if w.To.Before(w.From) {
			w.To = w.From
		}
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].From.Before(ws[j].From) })
	merged := []Window{}
	for _, w := range ws {
		if n := len(merged); n > 0 && !w.From.After(merged[n-1].To) {
			if w.To.After(merged[n-1].To) {
				merged[n-1].To = w.To
			}
			continue
		}
		merged = append(merged, w)
	}
	return merged
}

// Describe renders windows for messages: "restorable to any moment from A
// to B" (and "and from C to D" for holes).
func Describe(ws []Window) string {
	if len(ws) == 0 {
		return "nothing is restorable yet: no complete backup with its WAL archived"
	}
	s := "restorable to any moment"
	for i, w := range ws {
		if i > 0 {
			s += " and"
		}
		s += " from " + w.From.UTC().Format(time.RFC3339) + " to " + w.To.UTC().Format(time.RFC3339)
	}
	return s
}

// WALIndex lists the repository's archived WAL once (no key needed).
func (r *Repo) WALIndex(ctx context.Context) (*wal.Index, error) { return wal.LoadIndex(ctx, r.st) }

// Timelines reads the timeline histories the index names (they are
// sealed: without the identity, only what their names tell is known).
func (r *Repo) Timelines(ctx context.Context, ix *wal.Index, segSize int64) (*wal.Timelines, error) {
	return wal.LoadTimelines(ctx, r.st, r.codec, ix, segSize)
}

// EndLSN is where a backup is consistent.
func EndLSN(b *catalog.Backup) pglogrepl.LSN {
	end, _ := pglogrepl.ParseLSN(b.EndLSN)
	return end
}

// WindowsOn returns the recoverable windows of the backups that can reach
// timeline tli, along its history.
func WindowsOn(backups []*catalog.Backup, ix *wal.Index, ts *wal.Timelines, tli wal.Timeline) []Window {
	var us []Usability
	for _, b := range backups {
		from := wal.Timeline(b.Timeline)
		if ts.Reachable(from, EndLSN(b), tli) != nil {
			continue
		}
		path, err := ts.Path(from, tli)
		if err != nil {
			continue
		}
		c := ix.ChainOn(b.StartWAL, b.WALSegmentSize, path)
		us = append(us, Usability{Backup: b, Chain: c, Usable: c.CoversWhole(b.EndWAL, b.WALSegmentSize)})
	}
	return Windows(us)
}

// LatestTimeline is the timeline `restore --to latest` follows from these
// backups (those whose own WAL is complete): of every timeline one of
// them can reach (its own, and those branching from it at or after its
// end), the one whose archived WAL ends last in time. ok is false when
// backups is empty.
func LatestTimeline(backups []*catalog.Backup, ts *wal.Timelines) (tli wal.Timeline, ok bool) {
	var reach []wal.Timeline
	seen := map[wal.Timeline]bool{}
	for _, b := range backups {
		for _, t := range ts.Candidates(wal.Timeline(b.Timeline), EndLSN(b)) {
			if !seen[t] {
				seen[t] = true
				reach = append(reach, t)
			}
		}
	}
	if len(reach) == 0 {
		return 0, false
	}
	return ts.Latest(reach), true
}

// LatestWindows are the recoverable windows along the timeline restore
// follows by default (LatestTimeline of the usable backups): what
// `restore --to TIME` can reach without --timeline. A rehearsal that
// archived into the repository on its own timeline does not stretch
// them. It needs the timeline histories (ts with the identity); tli is
// the timeline they follow, 0 with no usable backup.
func LatestWindows(us []Usability, ix *wal.Index, ts *wal.Timelines) (ws []Window, tli wal.Timeline) {
	var usable []*catalog.Backup
	for _, u := range us {
		if u.Usable {
			usable = append(usable, u.Backup)
		}
	}
	tli, ok := LatestTimeline(usable, ts)
	if !ok {
		return []Window{}, 0
	}
	return WindowsOn(usable, ix, ts, tli), tli
}
