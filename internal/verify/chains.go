package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// walAndBackups checks the backups' entries and parts, queues their parts
// and the WAL, and follows each backup's WAL chain on every timeline it
// can reach, naming each gap and the window it breaks.
func (v *verifier) walAndBackups(ctx context.Context) error {
	l, err := v.r.ListBackups(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	backups := l.Backups
	if v.opts.Backup != "" {
		b, err := v.r.Backup(ctx, v.opts.Backup)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		backups = []*catalog.Backup{b}
	} else if v.opts.Backups {
		for _, d := range l.Damaged {
			v.problem("%s: damaged entry: %s", catalog.BackupEntryKey(d.ID), d.Reason)
		}
	}
	if v.opts.Backups {
		for _, b := range backups {
			v.parts(b)
		}
	}
	ix, err := v.r.WALIndex(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	ts := v.timelines(ctx, ix, backups)
	need := v.chains(backups, ix, ts)
	for _, name := range ix.Conflicts() {
		if need == nil || need(name) {
			v.problem("wal: %s is stored twice with different content: wal-fetch refuses it, so recovery stops there", name)
		}
	}
	v.walObjects(need)
	return nil
}

// parts checks that a backup's parts are stored with their sizes and
// queues their reads.
func (v *verifier) parts(b *catalog.Backup) {
	for _, p := range b.Parts {
		want, err := catalog.BackupPartKey(b.ID, p.Name, b.Encrypted)
		if err != nil || p.Key != want {
			v.problem("%s: part %s names %q, not its own %s", catalog.BackupEntryKey(b.ID), p.Name, p.Key, want)
			continue
		}
		if o, ok := v.present(p.Key, "part "+p.Name+" of backup "+b.ID, p.Stored); ok {
			v.sealedSums(o, b.Encrypted, repo.PartSums(p), p.Bytes)
		}
	}
}

// timelines reads the timeline histories (without the identity only what
// their names tell; a history that cannot be read is named by its own
// read, and the chains then follow the backups' own timelines).
func (v *verifier) timelines(ctx context.Context, ix *wal.Index, backups []*catalog.Backup) *wal.Timelines {
	var segSize int64
	if len(backups) > 0 {
		segSize = backups[0].WALSegmentSize
	}
	var codec *envelope.Codec
	if v.ids {
		codec = v.r.Codec()
	}
	ts, err := wal.LoadTimelines(ctx, v.st, codec, ix, segSize)
	if err != nil {
		ts, _ = wal.LoadTimelines(ctx, v.st, nil, ix, segSize)
	}
	return ts
}

// gap is a run of missing segments some backups' chains stop at.
type gap struct {
	tli      wal.Timeline
	from, to string // first and last missing segment
	after    time.Time
	backups  []string
}

// chains follows each backup's WAL; it returns, with Options.Backup, the
// test for the WAL names the backup needs (nil: all).
func (v *verifier) chains(backups []*catalog.Backup, ix *wal.Index, ts *wal.Timelines) func(name string) bool {
	maxSeg := map[int64]uint64{} // by segment size: the highest segment number archived
	for _, b := range backups {
		maxSeg[b.WALSegmentSize] = 0
	}
	for key := range v.listing {
		o, ok := catalog.ParseWALKey(key)
		if !ok {
			o, ok = catalog.ParseSealKey(key)
		}
		if !ok {
			continue
		}
		n, err := wal.ParseName(o.Name)
		if err != nil || n.Kind != wal.KindSegment {
			continue
		}
		for size, max := range maxSeg {
			if wal.ValidSegmentSize(size) && n.SegNo(size) > max {
				maxSeg[size] = n.SegNo(size)
			}
		}
	}
	gaps := map[string]*gap{}
	type span struct {
		tlis     map[wal.Timeline]bool
		from, to uint64
		segSize  int64
	}
	var spans []span
	for _, b := range backups {
		seg := b.WALSegmentSize
		own := ix.OwnChain(b.StartWAL, seg)
		if !own.CoversWhole(b.EndWAL, seg) {
			v.problem("wal: %s missing on timeline %d: backup %s cannot be restored (it needs the WAL from %s to %s)",
				own.Missing, b.Timeline, b.ID, b.StartWAL, b.EndWAL)
			continue
		}
		from := wal.Timeline(b.Timeline)
		for _, tli := range ts.Candidates(from, repo.EndLSN(b)) {
			path, err := ts.Path(from, tli)
			if err != nil {
				continue
			}
			c := ix.ChainOn(b.StartWAL, seg, path)
			sp := span{tlis: map[wal.Timeline]bool{}, segSize: seg}
			for _, s := range path {
				sp.tlis[s.Timeline] = true
			}
			first, _ := wal.ParseName(c.First)
			sp.from = first.SegNo(seg)
			sp.to = sp.from
			if last, err := wal.ParseName(c.Last); err == nil {
				sp.to = last.SegNo(seg) + 1 // the next, for a segment streamed in part
			}
			spans = append(spans, sp)
			if !c.MoreAfter {
				continue
			}
			g := gaps[c.Missing]
			if g == nil {
				miss, _ := wal.ParseName(c.Missing)
				g = &gap{tli: miss.Timeline, from: c.Missing, to: lastMissing(ix, miss.Timeline, sp.tlis, miss.SegNo(seg), maxSeg[seg], seg), after: c.LastStored}
				gaps[c.Missing] = g
			}
			if !contains(g.backups, b.ID) {
				g.backups = append(g.backups, b.ID)
			}
		}
	}
	for _, g := range gaps {
		v.problem("wal: %s missing on timeline %d: breaks the window from %s after %s",
			segmentRange(g.from, g.to), g.tli, backupList(g.backups), g.after.UTC().Format(time.RFC3339))
	}
	if v.opts.Backup == "" || v.opts.WAL {
		return nil
	}
	return func(name string) bool {
		n, err := wal.ParseName(name)
		if err != nil {
			return false
		}
		for _, sp := range spans {
			if !sp.tlis[n.Timeline] {
				continue
			}
			if n.Kind == wal.KindHistory {
				return true
			}
			if s := n.SegNo(sp.segSize); n.Kind == wal.KindSegment && s >= sp.from && s <= sp.to {
				return true
			}
		}
		return false
	}
}

// lastMissing returns the last segment of the gap starting at segment
// segNo on timeline tli: the one before the next segment archived on one
// of tlis (the chain's path).
func lastMissing(ix *wal.Index, tli wal.Timeline, tlis map[wal.Timeline]bool, segNo, maxSeg uint64, segSize int64) string {
	for s := segNo + 1; s <= maxSeg && s < segNo+1<<20; s++ {
		for t := range tlis {
			if ix.Has(wal.SegmentFileName(t, s, segSize)) {
				return wal.SegmentFileName(tli, s-1, segSize)
			}
		}
	}
	return wal.SegmentFileName(tli, segNo, segSize)
}

// segmentRange renders a run of segments: the first name, then ".." and
// the last one's digits from the first that differs (at least two), e.g.
// 000000010000000000000005..07.
func segmentRange(from, to string) string {
	if from == to || len(from) != len(to) {
		return from
	}
	i := 0
	for i < len(from) && from[i] == to[i] {
		i++
	}
	i = min(i, len(to)-2)
	return from + ".." + to[i:]
}

func backupList(ids []string) string {
	sort.Strings(ids)
	switch len(ids) {
	case 1:
		return "backup " + ids[0]
	case 2, 3:
		return "backups " + strings.Join(ids, ", ")
	}
	return fmt.Sprintf("backups %s (and %d more)", ids[len(ids)-1], len(ids)-1)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// walObjects queues every WAL object need selects (nil: all): segments,
// .partial and .backup files and histories by the SHA-256 in their key,
// stream chunks by theirs and their length.
func (v *verifier) walObjects(need func(string) bool) {
	seals := map[string]bool{} // segments whose chunks their seal's check reads
	encrypted := map[string]bool{}
	for key := range v.listing {
		if c, ok := catalog.ParseStreamChunkKey(key); ok && c.Encrypted {
			encrypted[c.Name] = true
		}
	}
	for key, o := range v.listing {
		if w, ok := catalog.ParseSealKey(key); ok && (need == nil || need(w.Name)) {
			seals[w.Name] = true
			v.seal(o, v.canOpen(encrypted[w.Name]))
		}
	}
	for key, o := range v.listing {
		if w, ok := catalog.ParseWALKey(key); ok {
			if need == nil || need(w.Name) {
				v.sealed(o, w.Encrypted, w.SHA256, -1)
			}
			continue
		}
		if c, ok := catalog.ParseStreamChunkKey(key); ok && !seals[c.Name] && (need == nil || need(c.Name)) {
			v.sealed(o, c.Encrypted, c.SHA256, c.End-c.Start)
		}
	}
}

// seal queues the check of a sealed segment (issue 13): its seal matches
// its key, the chunks it names are listed, and, when they can be opened
// (open), each matches its SHA-256 and the whole the seal's.
func (v *verifier) seal(o storage.ObjectInfo, open bool) {
	level := levelContent
	if !open {
		level = levelStored // a later run with the identity reads the chunks
	}
	v.add(task{obj: o, level: level, read: func(ctx context.Context) error {
		s, err := wal.ReadSeal(ctx, v.st, o.Key)
		if err != nil {
			if _, serr := v.st.Stat(ctx, o.Key); errors.Is(serr, storage.ErrNotExist) {
				return errVanished
			}
			return fmt.Errorf("%s: %w", o.Key, err)
		}
		for _, sc := range s.Chunks {
			if _, ok := v.listing[sc.Key]; !ok {
				return fmt.Errorf("%s: %w: chunk %s named by its seal is missing", o.Key, wal.ErrCorrupt, sc.Key)
			}
			c, _ := catalog.ParseStreamChunkKey(sc.Key)
			open = open && v.canOpen(c.Encrypted)
		}
		if !open {
			v.count(&v.res.Sealed)
			return nil
		}
		if err := wal.CopySealed(ctx, v.st, v.r.Codec(), s, io.Discard); err != nil {
			return fmt.Errorf("%s: %w", o.Key, err)
		}
		return nil
	}})
}
