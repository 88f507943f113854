package wal

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
)

// Timelines: every promotion (a failover, or the end of a restore's
// recovery) starts a new timeline and archives its history file, one line
// per ancestor: "parentTLI<TAB>switchpoint<TAB>reason" (PostgreSQL's
// writeTimeLineHistory in src/backend/access/transam/timeline.c). A
// rehearsal restore whose copy archives into the same repository adds a
// timeline too, so which timeline a restore follows must be chosen from
// these facts, not by taking the highest number; see
// https://www.postgresql.org/docs/current/continuous-archiving.html#BACKUP-TIMELINES

// HistoryEntry is one line of a timeline history file: Timeline was left
// at Switch for the next timeline of the file (or the file's own).
type HistoryEntry struct {
	Timeline Timeline
	Switch   pglogrepl.LSN
	Reason   string
}

// maxHistoryBytes bounds a history file read into memory: one line per
// ancestor, so even thousands of timelines stay far below it.
const maxHistoryBytes = 1 << 20

// ParseHistory parses a timeline history file as PostgreSQL's
// readTimeLineHistory does: blank lines and lines starting with '#' are
// skipped, timelines must increase. The reason is the rest of the line.
func ParseHistory(data []byte) ([]HistoryEntry, error) {
	var out []HistoryEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxHistoryBytes)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimLeft(sc.Text(), " \t\r\f\v")
		if s == "" || s[0] == '#' {
			continue
		}
		tliText, rest, _ := strings.Cut(s, "\t")
		lsnText, reason, _ := strings.Cut(strings.TrimLeft(rest, " \t"), "\t")
		if i := strings.IndexAny(lsnText, " \r"); i >= 0 { // "1\t0/3000000" without a reason
			lsnText, reason = lsnText[:i], lsnText[i:]
		}
		tli, err := strconv.ParseUint(tliText, 10, 32)
		if err != nil || tli == 0 {
			return nil, fmt.Errorf("history line %d: %q is not a timeline id", line, tliText)
		}
		hi, lo, ok := strings.Cut(lsnText, "/")
		h, err1 := strconv.ParseUint(hi, 16, 32)
		l, err2 := strconv.ParseUint(lo, 16, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("history line %d: %q is not an LSN", line, lsnText)
		}
		e := HistoryEntry{Timeline: Timeline(tli), Switch: pglogrepl.LSN(h<<32 | l), Reason: strings.TrimSpace(reason)}
		if n := len(out); n > 0 && (e.Timeline <= out[n-1].Timeline || e.Switch < out[n-1].Switch) {
			return nil, fmt.Errorf("history line %d: timeline %d at %s does not follow timeline %d at %s", line, e.Timeline, e.Switch, out[n-1].Timeline, out[n-1].Switch)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}

// BranchKind says how a timeline began.
type BranchKind string

// The kinds of branch points.
const (
	BranchNone     BranchKind = "none"     // no parent: timeline 1, or no history file stored
	BranchRestore  BranchKind = "restore"  // recovery stopped at a target: a restore (a rehearsal, or a repair)
	BranchFailover BranchKind = "failover" // recovery ended with no target: a standby's promotion, or a restore to the end of the archive
	BranchUnknown  BranchKind = "unknown"  // a history file is stored but was not read (no identity) or is damaged
)

// restoreReasons are how PostgreSQL's getRecoveryStopReason starts a
// reason when recovery stopped at a target; "no recovery target specified"
// is the reason without one.
var restoreReasons = []string{"before ", "after ", "at restore point", "reached consistency"}

// KindOf classifies a history reason.
func KindOf(reason string) BranchKind {
	for _, p := range restoreReasons {
		if strings.HasPrefix(reason, p) {
			return BranchRestore
		}
	}
	return BranchFailover
}

// reasonTime returns the time in a reason "before 2026-11-22
// 14:01:00.123+00" or "after ...", as timestamptz_to_str prints it.
func reasonTime(reason string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(reason, "before ")
	if !ok {
		if rest, ok = strings.CutPrefix(reason, "after "); !ok {
			return time.Time{}, false
		}
	}
	rest = strings.TrimSpace(rest)
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00:00"} {
		if t, err := time.Parse(layout, rest); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// TimelineInfo is what the repository knows about one timeline.
type TimelineInfo struct {
	Timeline Timeline
	// History lists the ancestors, oldest first (empty for a timeline
	// without a stored history file). HistoryKnown is false when a history
	// file is stored but was not read or could not be parsed (HistoryErr).
	History      []HistoryEntry
	HistoryKnown bool
	HistoryErr   error
	HistoryKey   string    // "" when no history file is stored
	HistoryAt    time.Time // when the history file was stored
	// The branch point, from the last history line.
	Parent     Timeline // 0: none
	BranchLSN  pglogrepl.LSN
	Reason     string
	Kind       BranchKind
	BranchTime time.Time // from the reason when it names one, else HistoryAt
	// Where its archived WAL ends: the newest segment (whole or streamed in
	// part) and when its newest file was stored (its history file included).
	LastSegment string
	EndLSN      pglogrepl.LSN
	EndTime     time.Time
}

// Timelines is what LoadTimelines found, by timeline.
type Timelines struct {
	byID map[Timeline]*TimelineInfo
}

// DefaultSegmentSize is PostgreSQL's default wal_segment_size, used for
// LSNs when no backup tells the real one.
const DefaultSegmentSize = 16 << 20

// LoadTimelines combines the index with the stored history files. With a
// nil codec the history files are not read (their content is encrypted):
// those timelines get BranchUnknown. A history file that cannot be parsed
// is reported in its HistoryErr; a failed read is an error. segSize turns
// segment names into LSNs (0: DefaultSegmentSize).
func LoadTimelines(ctx context.Context, st storage.Storage, codec *envelope.Codec, ix *Index, segSize int64) (*Timelines, error) {
	if !ValidSegmentSize(segSize) {
		segSize = DefaultSegmentSize
	}
	ts := &Timelines{byID: map[Timeline]*TimelineInfo{}}
	get := func(tli Timeline) *TimelineInfo {
		t := ts.byID[tli]
		if t == nil {
			t = &TimelineInfo{Timeline: tli, HistoryKnown: true, Kind: BranchNone}
			ts.byID[tli] = t
		}
		return t
	}
	seen := func(t *TimelineInfo, name string, stored time.Time, end pglogrepl.LSN) {
		if stored.After(t.EndTime) {
			t.EndTime = stored
		}
		if name != "" && name >= t.LastSegment {
			t.LastSegment, t.EndLSN = name, end
		}
	}
	for name, e := range ix.files {
		n, err := ParseName(name)
		if err != nil {
			continue
		}
		switch n.Kind {
		case KindSegment:
			seen(get(n.Timeline), name, e.Stored, pglogrepl.LSN((n.SegNo(segSize)+1)*uint64(segSize)))
		case KindHistory:
			t := get(n.Timeline)
			t.HistoryKey, t.HistoryAt = e.Key, e.Stored
			seen(t, "", e.Stored, 0)
		}
	}
	for name := range ix.streamed {
		if _, whole := ix.files[name]; whole {
			continue
		}
		n, err := ParseName(name)
		e, ok := ix.streamedEntry(name)
		if err != nil || !ok {
			continue
		}
		size := ix.streamed[name][0].SegSize
		if !ValidSegmentSize(size) {
			size = segSize
		}
		seen(get(n.Timeline), name, e.Stored, pglogrepl.LSN(n.SegNo(size)*uint64(size)+uint64(e.Partial)))
	}
	for _, t := range ts.byID {
		if t.HistoryKey == "" {
			continue
		}
		t.BranchTime = t.HistoryAt
		if codec == nil {
			t.HistoryKnown, t.Kind = false, BranchUnknown
			continue
		}
		data, err := readHistory(ctx, st, codec, ix.files[HistoryFileName(t.Timeline)])
		if err != nil {
			return nil, err
		}
		h, err := ParseHistory(data)
		if err == nil && len(h) > 0 && h[len(h)-1].Timeline >= t.Timeline {
			err = fmt.Errorf("its last line names timeline %d", h[len(h)-1].Timeline)
		}
		if err != nil {
			t.HistoryKnown, t.HistoryErr, t.Kind = false, fmt.Errorf("%s: %w", HistoryFileName(t.Timeline), err), BranchUnknown
			continue
		}
		t.History = h
		if len(h) == 0 {
			continue
		}
		last := h[len(h)-1]
		t.Parent, t.BranchLSN, t.Reason, t.Kind = last.Timeline, last.Switch, last.Reason, KindOf(last.Reason)
		if at, ok := reasonTime(last.Reason); ok {
			t.BranchTime = at
		}
	}
	return ts, nil
}

// readHistory downloads and verifies one history file.
func readHistory(ctx context.Context, st storage.Storage, codec *envelope.Codec, e Entry) ([]byte, error) {
	pr, classify, err := OpenStored(ctx, st, codec, e.Key, e.Name, e.Encrypted, e.SHA256)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e.Name, err)
	}
	defer pr.Close()
	data, err := io.ReadAll(io.LimitReader(pr, maxHistoryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e.Name, classify(err))
	}
	if len(data) > maxHistoryBytes {
		return nil, fmt.Errorf("read %s: larger than %d bytes", e.Name, maxHistoryBytes)
	}
	return data, nil
}

// NewTimelines builds Timelines from known facts (for tests and callers
// that hold them already).
func NewTimelines(infos ...TimelineInfo) *Timelines {
	ts := &Timelines{byID: map[Timeline]*TimelineInfo{}}
	for i := range infos {
		t := infos[i]
		ts.byID[t.Timeline] = &t
	}
	return ts
}

// All returns every timeline, ascending.
func (ts *Timelines) All() []TimelineInfo {
	out := make([]TimelineInfo, 0, len(ts.byID))
	for _, t := range ts.byID {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timeline < out[j].Timeline })
	return out
}

// Get returns one timeline's facts.
func (ts *Timelines) Get(tli Timeline) (TimelineInfo, bool) {
	t, ok := ts.byID[tli]
	if !ok {
		return TimelineInfo{}, false
	}
	return *t, true
}

// Reachable reports why recovery from a backup on timeline from,
// consistent at end, cannot follow the history to timeline to; nil when it
// can. PostgreSQL refuses a target timeline whose history does not contain
// the backup's timeline ("requested timeline N is not a child of this
// server's history") or leaves it before the backup's end.
func (ts *Timelines) Reachable(from Timeline, end pglogrepl.LSN, to Timeline) error {
	if to == from {
		return nil
	}
	t, ok := ts.byID[to]
	switch {
	case !ok:
		return fmt.Errorf("timeline %d is not in the archive", to)
	case t.HistoryKey == "":
		return fmt.Errorf("timeline %d has no history file in the archive, so where it branched is unknown", to)
	case !t.HistoryKnown && t.HistoryErr != nil:
		return fmt.Errorf("timeline %d: history unreadable: %v", to, t.HistoryErr)
	case !t.HistoryKnown:
		return fmt.Errorf("timeline %d: history not read", to)
	}
	for _, h := range t.History {
		if h.Timeline != from {
			continue
		}
		if h.Switch < end {
			return fmt.Errorf("timeline %d branched from timeline %d at %s, before the backup's end at %s", to, from, h.Switch, end)
		}
		return nil
	}
	return fmt.Errorf("timeline %d does not descend from timeline %d (its history: %s)", to, from, t.lineage())
}

// lineage renders "1 -> 2 -> 4".
func (t *TimelineInfo) lineage() string {
	var b strings.Builder
	for _, h := range t.History {
		fmt.Fprintf(&b, "%d -> ", h.Timeline)
	}
	fmt.Fprintf(&b, "%d", t.Timeline)
	return b.String()
}

// Candidates returns the timelines recovery from a backup on timeline
// from, consistent at end, can follow: from itself and every timeline
// whose history leaves from at or after end; ascending.
func (ts *Timelines) Candidates(from Timeline, end pglogrepl.LSN) []Timeline {
	out := []Timeline{from}
	for _, t := range ts.All() {
		if t.Timeline != from && ts.Reachable(from, end, t.Timeline) == nil {
			out = append(out, t.Timeline)
		}
	}
	return out
}

// Latest returns, of the given timelines, the one whose archived WAL ends
// last in time. On a tie (S3 listings may give whole seconds), a timeline
// that did not branch from a restore wins over one that did (production
// over a rehearsal), then the higher timeline.
func (ts *Timelines) Latest(tlis []Timeline) Timeline {
	var best Timeline
	var bestAt time.Time
	var bestRestore bool
	for _, tli := range tlis {
		var at time.Time
		var restore bool
		if t, ok := ts.byID[tli]; ok {
			at, restore = t.EndTime, t.Kind == BranchRestore
		}
		better := at.After(bestAt)
		if at.Equal(bestAt) {
			better = bestRestore && !restore || bestRestore == restore && tli > best
		}
		if best == 0 || better {
			best, bestAt, bestRestore = tli, at, restore
		}
	}
	return best
}

// Step is one timeline of a Path: it holds the WAL from Begin (where it
// branched; 0 for the first) up to End (where the next step branched off
// it; 0 for the last, which is open-ended).
type Step struct {
	Timeline   Timeline
	Begin, End pglogrepl.LSN
}

// Path is the timelines recovery follows, oldest first.
type Path []Step

// Path returns the steps from timeline from to timeline to (from's step
// first); Reachable must have allowed it.
func (ts *Timelines) Path(from, to Timeline) (Path, error) {
	if from == to {
		return Path{{Timeline: from}}, nil
	}
	t, ok := ts.byID[to]
	if !ok {
		return nil, fmt.Errorf("timeline %d is not in the archive", to)
	}
	for i, h := range t.History {
		if h.Timeline != from {
			continue
		}
		var p Path
		for k := i; k < len(t.History); k++ {
			s := Step{Timeline: t.History[k].Timeline, End: t.History[k].Switch}
			if k > 0 {
				s.Begin = t.History[k-1].Switch
			}
			p = append(p, s)
		}
		return append(p, Step{Timeline: to, Begin: t.History[len(t.History)-1].Switch}), nil
	}
	return nil, fmt.Errorf("timeline %d does not descend from timeline %d", to, from)
}

// Target returns the path's last timeline.
func (p Path) Target() Timeline {
	if len(p) == 0 {
		return 0
	}
	return p[len(p)-1].Timeline
}

// at returns the timelines whose WAL may hold segment segNo, newest
// first, none older than cur: recovery tries a segment on the newest
// timeline that had begun by then (PostgreSQL's XLogFileReadAnyTLI), and
// never on a timeline past the segment where the path left it (that WAL
// belongs to a history the path does not follow).
func (p Path) at(segNo uint64, segSize int64, cur Timeline) []Timeline {
	var out []Timeline
	start := segNo * uint64(segSize)
	for i := len(p) - 1; i >= 0; i-- {
		s := p[i]
		if s.Timeline < cur {
			break
		}
		if s.Begin != 0 && segNo < uint64(s.Begin)/uint64(segSize) {
			continue
		}
		if s.End != 0 && start >= uint64(s.End) {
			continue
		}
		out = append(out, s.Timeline)
	}
	return out
}

// OwnChain follows archived segments from start on start's timeline only.
// A base backup's WAL, from its start to its end, is all on the backup's
// timeline: another timeline's segments of the same numbers (a rehearsal
// restored from this cluster) never make the backup consistent.
func (ix *Index) OwnChain(start string, segSize int64) Chain {
	n, err := ParseName(start)
	if err != nil || n.Kind != KindSegment {
		return Chain{First: start, Missing: start}
	}
	return ix.ChainOn(start, segSize, Path{{Timeline: n.Timeline}})
}

// ChainOn is Chain following a timeline path, as recovery with
// recovery_target_timeline = path.Target() does: at each segment it takes
// the newest timeline of the path that holds it, and never switches to a
// timeline off the path.
func (ix *Index) ChainOn(start string, segSize int64, path Path) Chain {
	n, err := ParseName(start)
	if err != nil || n.Kind != KindSegment || !ValidSegmentSize(segSize) || len(path) == 0 {
		return Chain{First: start, Missing: start}
	}
	cur := n.Timeline
	segNo := n.SegNo(segSize)
	c := Chain{First: start}
	for {
		tls := path.at(segNo, segSize, cur)
		if len(tls) == 0 {
			c.Missing = SegmentFileName(cur, segNo, segSize)
			return c
		}
		found := ""
		for _, tli := range tls {
			if name := SegmentFileName(tli, segNo, segSize); ix.Has(name) {
				found, cur = name, tli
				break
			}
		}
		if found == "" {
			missing := SegmentFileName(tls[0], segNo, segSize)
			for _, tli := range tls {
				if e, ok := ix.streamedEntry(SegmentFileName(tli, segNo, segSize)); ok {
					c.Last, c.LastStored, c.LastPartial = e.Name, e.Stored, true
					segNo++
					missing = SegmentFileName(tli, segNo, segSize)
					cur = tli
					break
				}
			}
			c.Missing = missing
			c.MoreAfter = ix.anyAfterOn(segNo, segSize, path, cur)
			return c
		}
		c.Last = found
		c.LastStored = ix.files[found].Stored
		segNo++
	}
}

// anyAfterOn reports whether a segment numbered above segNo is archived on
// a timeline of the path that may hold it.
func (ix *Index) anyAfterOn(segNo uint64, segSize int64, path Path, cur Timeline) bool {
	for name := range ix.files {
		n, err := ParseName(name)
		if err != nil || n.Kind != KindSegment {
			continue
		}
		s := n.SegNo(segSize)
		if s <= segNo {
			continue
		}
		for _, tli := range path.at(s, segSize, cur) {
			if tli == n.Timeline {
				return true
			}
		}
	}
	return false
}
