package retention

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// ErrCannotDelete is returned when the very first delete is refused with a
// permanent error: the storage credentials are those of the database host,
// which may write but not delete.
var ErrCannotDelete = errors.New("storage credentials cannot delete (retain needs a credential with s3:DeleteObject)")

// Options says what Run keeps and deletes.
type Options struct {
	// Policies per kind; a zero Policy keeps everything of its kind.
	Backups, Dumps, Files Policy
	// Which kinds to apply: a kind not selected is left alone (WAL goes
	// with backups, file packs with snapshots).
	DoBackups, DoDumps, DoFiles bool
	DryRun                      bool
	Now                         time.Time      // zero: time.Now()
	Loc                         *time.Location // days of the calendar rules; nil: UTC
	// Grace: leftovers of interrupted jobs (a reservation or parts without
	// an entry) are removed once older than this; 0 keeps them.
	Grace time.Duration
	// KeepReports is how many reports of each kind stay; 0 means 30.
	KeepReports int
	// PlanPacks plans the file-pack garbage collection: kept and dropped
	// are the complete snapshots retention keeps and deletes. The GC
	// counts every snapshot it lists but the dropped ones (one finished
	// since retention listed them among them); nil leaves packs alone.
	PlanPacks func(ctx context.Context, kept, dropped []*catalog.Snapshot, now time.Time, grace time.Duration) (*PackPlan, error)
	// ExtendLocks extends the Object Lock of the kept backups and the WAL
	// they need (retention.ExtendLocks); nil when the store has no lock.
	ExtendLocks func(ctx context.Context, kept []*catalog.Backup, ix *wal.Index) (int, error)
}

// PackPlan is what the file-pack garbage collection would do.
type PackPlan struct {
	Summary string                          `json:"summary"` // one line, e.g. "delete 3 packs, rewrite 1"
	Bytes   int64                           `json:"bytes_freed"`
	Apply   func(ctx context.Context) error `json:"-"`
}

// KindResult counts one kind's items.
type KindResult struct {
	Keep   int   `json:"keep"`
	Delete int   `json:"delete"`
	Bytes  int64 `json:"bytes_freed"`
}

// Result is what Run decided, and (without DryRun) did. A real run reports
// the same counts its dry run did; what the store refused to delete is in
// Locked.
type Result struct {
	DryRun    bool        `json:"dry_run"`
	Backups   *KindResult `json:"backups,omitempty"`
	Dumps     *KindResult `json:"dumps,omitempty"`
	Files     *KindResult `json:"files,omitempty"`
	WAL       *KindResult `json:"wal,omitempty"`       // files, not segments: .partial and .backup count too
	Streamed  *KindResult `json:"streamed,omitempty"`  // stream chunks covered by a whole segment
	Leftovers *KindResult `json:"leftovers,omitempty"` // incomplete backups, dumps, snapshots (items)
	Pins      *KindResult `json:"pin_records,omitempty"`
	Reports   *KindResult `json:"reports,omitempty"`
	Packs     *PackPlan   `json:"packs,omitempty"`
	// Windows are the recoverable windows of the kept backups over the WAL
	// that remains.
	Windows []repo.Window `json:"recoverable_windows"`
	// WALKept says why no WAL is deleted, when none is ("" otherwise).
	WALKept     string     `json:"wal_kept_reason,omitempty"`
	Locked      int        `json:"locked_objects"`
	LockedUntil time.Time  `json:"locked_until,omitzero"`
	Extended    int        `json:"locks_extended"`
	Decisions   []Decision `json:"decisions"`
}

// plan is everything Run will delete, in order.
type plan struct {
	res       *Result
	items     []*repo.Stored // planned backups, dumps, snapshots, entry first
	walKeys   []string       // WAL files and chunks no kept backup needs, and covered chunks
	leftovers []*repo.Stored
	pins      []string
	reports   []string
	kept      []*catalog.Backup
	ix        *wal.Index // the WAL that remains (nil without backups selected)
	deleted   map[catalog.PinRef]bool
}

// Run applies the policies to the repository: see doc.go for what is
// deleted in which order and why that is safe with jobs running.
func Run(ctx context.Context, r *repo.Repo, o Options) (*Result, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.KeepReports == 0 {
		o.KeepReports = 30
	}
	pins, err := r.ListPins(ctx)
	if err != nil {
		return nil, err
	}
	p, err := makePlan(ctx, r, o, pins)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return p.res, nil
	}
	// Pins taken while planning win: plan again with them.
	if pins, err = r.ListPins(ctx); err != nil {
		return nil, err
	}
	for ref := range p.deleted {
		if pins.Pinned(ref) {
			if p, err = makePlan(ctx, r, o, pins); err != nil {
				return nil, err
			}
			break
		}
	}
	return p.res, apply(ctx, r, o, p)
}

func makePlan(ctx context.Context, r *repo.Repo, o Options, pins *repo.Pins) (*plan, error) {
	p := &plan{res: &Result{DryRun: o.DryRun, Windows: []repo.Window{}}, deleted: map[catalog.PinRef]bool{}}
	inv, err := r.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	graceCut := o.Now.Add(-o.Grace)
	named, err := listAppNamed(ctx, r) // issue 12: what app points name stays
	if err != nil {
		return nil, err
	}

	// Backups.
	l, err := r.ListBackups(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*catalog.Backup{}
	var items []Item
	for _, b := range l.Backups {
		byID[b.ID] = b
		items = append(items, Item{Kind: KindBackup, ID: b.ID, Time: b.StartTime, Timeline: b.Timeline,
			Pinned: pins.Pinned(catalog.PinRef{Kind: catalog.PinBackup, ID: b.ID})})
	}
	var bds []Decision
	if o.DoBackups {
		bds = Plan(items, o.Backups, o.Now, o.Loc)
	} else {
		bds = Plan(items, Policy{}, o.Now, o.Loc)
	}
	// The newest restorable backup stays too: the newest by time may be one
	// whose parts are gone. WAL is only looked at with backups.
	var walObjs []storage.ObjectInfo
	if o.DoBackups {
		if walObjs, err = r.ListWAL(ctx); err != nil {
			return nil, err
		}
		if p.ix, err = repo.IndexOf(ctx, walObjs); err != nil {
			return nil, err
		}
		usable := ""
		for _, u := range l.Check(p.ix) {
			if u.Usable && (usable == "" || !u.Backup.StartTime.Before(byID[usable].StartTime)) {
				usable = u.Backup.ID
			}
		}
		for i := range bds {
			if bds[i].Item.ID == usable && !bds[i].Keep {
				bds[i].Keep, bds[i].Reasons = true, append(bds[i].Reasons, ReasonNewest)
			}
		}
		named.keepBackups(bds, byID)
		p.res.Backups = &KindResult{}
		p.count(p.res.Backups, bds, inv.Backups, func(d Decision) string { return catalog.BackupPrefix(d.Item.ID) })
	}
	for _, d := range bds {
		if d.Keep {
			p.kept = append(p.kept, byID[d.Item.ID])
		}
	}
	p.res.Decisions = append(p.res.Decisions, bds...)

	// Dumps, each database on its own.
	if o.DoDumps {
		dumps, _, err := r.ListDumps(ctx, "")
		if err != nil {
			return nil, err
		}
		items = items[:0]
		for _, d := range dumps {
			items = append(items, Item{Kind: KindDump, Group: d.Database, ID: d.ID, Time: d.StartTime,
				Pinned: pins.Pinned(catalog.PinRef{Kind: catalog.PinDump, Group: d.Database, ID: d.ID})})
		}
		ds := Plan(items, o.Dumps, o.Now, o.Loc)
		named.keepNamed(ds)
		p.res.Dumps = &KindResult{}
		p.count(p.res.Dumps, ds, inv.Dumps, func(d Decision) string { return catalog.DumpPrefix(d.Item.Group, d.Item.ID) })
		p.res.Decisions = append(p.res.Decisions, ds...)
	}

	// File snapshots, each set on its own, then the packs they leave.
	if o.DoFiles {
		snaps, _, err := r.ListSnapshots(ctx, "")
		if err != nil {
			return nil, err
		}
		items = items[:0]
		bySnap := map[string]*catalog.Snapshot{}
		for _, s := range snaps {
			bySnap[s.Set+"/"+s.ID] = s
			items = append(items, Item{Kind: KindSnapshot, Group: s.Set, ID: s.ID, Time: s.StartTime,
				Pinned: pins.Pinned(catalog.PinRef{Kind: catalog.PinSnapshot, Group: s.Set, ID: s.ID})})
		}
		ds := Plan(items, o.Files, o.Now, o.Loc)
		named.keepNamed(ds)
		p.res.Files = &KindResult{}
		p.count(p.res.Files, ds, inv.Snapshots, func(d Decision) string { return catalog.SnapshotPrefix(d.Item.Group, d.Item.ID) })
		p.res.Decisions = append(p.res.Decisions, ds...)
		if o.PlanPacks != nil {
			var kept, dropped []*catalog.Snapshot
			for _, d := range ds {
				if s := bySnap[d.Item.Group+"/"+d.Item.ID]; d.Keep {
					kept = append(kept, s)
				} else {
					dropped = append(dropped, s)
				}
			}
			if p.res.Packs, err = o.PlanPacks(ctx, kept, dropped, o.Now, o.Grace); err != nil {
				return nil, err
			}
		}
	}

	// Leftovers of interrupted jobs, of the kinds selected.
	p.res.Leftovers = &KindResult{}
	var young []*repo.Stored // incomplete backups within the grace: maybe running
	for _, sel := range []struct {
		do, backups bool
		m           map[string]*repo.Stored
	}{{o.DoBackups, true, inv.Backups}, {o.DoDumps, false, inv.Dumps}, {o.DoFiles, false, inv.Snapshots}} {
		for _, s := range repo.Sorted(sel.m) {
			if s.Entry != "" {
				continue
			}
			started, _ := catalog.BackupIDTime(s.ID)
			if o.Grace > 0 && started.Before(graceCut) && s.Newest.Before(graceCut) {
				if sel.do {
					p.leftovers = append(p.leftovers, s)
					p.res.Leftovers.Delete++
					p.res.Leftovers.Bytes += s.Bytes()
				}
			} else if sel.backups && s.Newest.After(o.Now.Add(-max(o.Grace, 24*time.Hour))) {
				young = append(young, s) // maybe still running (with grace 0, a day's activity says so)
			}
		}
	}

	// WAL, and the window that remains.
	if o.DoBackups {
		if err := p.planWAL(ctx, walObjs, l, young); err != nil {
			return nil, err
		}
		p.res.Windows = repo.Windows(repo.Check(p.kept, p.ix))
	}

	// Superseded pin records and old reports.
	p.res.Pins = &KindResult{}
	for _, oi := range pins.Superseded {
		p.pins = append(p.pins, oi.Key)
		p.res.Pins.Delete++
		p.res.Pins.Bytes += oi.Size
	}
	old, err := r.OldReports(ctx, o.KeepReports)
	if err != nil {
		return nil, err
	}
	p.res.Reports = &KindResult{}
	for _, oi := range old {
		p.reports = append(p.reports, oi.Key)
		p.res.Reports.Delete++
		p.res.Reports.Bytes += oi.Size
	}
	return p, nil
}

// count adds one kind's decisions to kr and the items to delete to p.
func (p *plan) count(kr *KindResult, ds []Decision, stored map[string]*repo.Stored, prefix func(Decision) string) {
	for _, d := range ds {
		if d.Keep {
			kr.Keep++
			continue
		}
		s := stored[prefix(d)]
		if s == nil || s.Entry == "" {
			continue // gone since it was listed
		}
		kr.Delete++
		kr.Bytes += s.Bytes()
		p.items = append(p.items, s)
		p.deleted[catalog.PinRef{Kind: d.Item.Kind, Group: d.Item.Group, ID: d.Item.ID}] = true
	}
}

// planWAL picks the WAL files no kept backup needs: a kept backup needs
// every segment from its start segment on, on its timeline and on every
// later one (a superset of the timelines descending from it, which needs
// no history file read). Timeline history files are never deleted.
// Streamed chunks of a segment stored whole are deleted too.
func (p *plan) planWAL(ctx context.Context, objs []storage.ObjectInfo, l *repo.Backups, young []*repo.Stored) error {
	p.res.WAL, p.res.Streamed = &KindResult{}, &KindResult{}
	switch {
	case len(p.kept) == 0:
		p.res.WALKept = "no backup is kept"
	case len(l.Damaged) > 0:
		p.res.WALKept = "a backup entry is damaged: the WAL it needs is not known"
	}
	// A backup still running (an incomplete backup within the grace) needs
	// the WAL stored since it started; it reserved its id before.
	var since time.Time
	for _, s := range young {
		for _, oi := range s.Objects {
			if since.IsZero() || oi.ModTime.Before(since) {
				since = oi.ModTime
			}
		}
	}
	if !since.IsZero() {
		since = since.Add(-time.Minute) // stores keep whole seconds
	}
	type start struct {
		tli   wal.Timeline
		segNo uint64
	}
	var starts []start
	var segSize int64
	for _, b := range p.kept {
		n, err := wal.ParseName(b.StartWAL)
		if err != nil {
			p.res.WALKept = "backup " + b.ID + " names no start segment"
			break
		}
		starts = append(starts, start{n.Timeline, n.SegNo(b.WALSegmentSize)})
		if segSize != 0 && segSize != b.WALSegmentSize {
			p.res.WALKept = "backups differ in WAL segment size"
		}
		segSize = b.WALSegmentSize
	}
	needed := func(name string) bool {
		n, err := wal.ParseName(name)
		if err != nil || n.Kind == wal.KindHistory {
			return true
		}
		for _, s := range starts {
			if n.Timeline >= s.tli && n.SegNo(segSize) >= s.segNo {
				return true
			}
		}
		return false
	}
	whole := map[string]bool{}
	sealedAt := map[string]time.Time{} // a sealed segment's chunks go when its seal does
	for _, oi := range objs {
		if o, ok := catalog.ParseWALKey(oi.Key); ok {
			whole[o.Name] = true
		} else if o, ok := catalog.ParseSealKey(oi.Key); ok && oi.ModTime.After(sealedAt[o.Name]) {
			sealedAt[o.Name] = oi.ModTime
		}
	}
	var remaining []storage.ObjectInfo
	for _, oi := range objs {
		name, chunk, seal := "", false, false
		if o, ok := catalog.ParseWALKey(oi.Key); ok {
			name = o.Name
		} else if c, ok := catalog.ParseStreamChunkKey(oi.Key); ok {
			name, chunk = c.Name, true
		} else if o, ok := catalog.ParseSealKey(oi.Key); ok {
			// A seal goes with its chunks: with the segment, or as
			// clutter once a whole copy supersedes both. It sorts
			// before them, so it is deleted first.
			name, seal = o.Name, true
		}
		stored := oi.ModTime
		if t, ok := sealedAt[name]; ok && chunk {
			stored = t
		}
		del := name != "" && p.res.WALKept == "" && !needed(name) && (since.IsZero() || stored.Before(since))
		switch {
		case del:
			p.walKeys = append(p.walKeys, oi.Key)
			p.res.WAL.Delete++
			p.res.WAL.Bytes += oi.Size
		case (chunk || seal) && whole[name]:
			p.walKeys = append(p.walKeys, oi.Key)
			p.res.Streamed.Delete++
			p.res.Streamed.Bytes += oi.Size
		default:
			remaining = append(remaining, oi)
			if name != "" && !chunk {
				p.res.WAL.Keep++
			}
		}
	}
	ix, err := repo.IndexOf(ctx, remaining)
	if err != nil {
		return err
	}
	p.ix = ix
	return nil
}

// deleter deletes objects, counting those the store keeps locked.
type deleter struct {
	st     storage.Storage
	locker storage.Locker
	any    bool // a delete succeeded
	res    *Result
}

// del deletes key; ok is false when the store refused because of a lock.
func (d *deleter) del(ctx context.Context, key string) (ok bool, err error) {
	err = d.st.Delete(ctx, key)
	switch {
	case err == nil:
		d.any = true
		return true, nil
	case errors.Is(err, storage.ErrLocked):
		d.res.Locked++
		if d.locker != nil {
			if until, lerr := d.locker.LockedUntil(ctx, key); lerr == nil && until.After(d.res.LockedUntil) {
				d.res.LockedUntil = until
			}
		}
		return false, nil
	case !d.any && errors.Is(err, storage.ErrPermanent):
		return false, fmt.Errorf("%w: delete %s: %v", ErrCannotDelete, key, err)
	}
	return false, fmt.Errorf("delete %s: %w", key, err)
}

func apply(ctx context.Context, r *repo.Repo, o Options, p *plan) error {
	log := zerolog.Ctx(ctx)
	d := &deleter{st: r.Store(), res: p.res}
	d.locker, _ = storage.LockerOf(r.Store())
	// Entries first: once a backup's entry is gone nothing lists it; a
	// crash after that leaves an incomplete backup, a leftover.
	keptLocked := map[string]bool{}
	for _, s := range p.items {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i, key := range s.DeleteOrder() {
			ok, err := d.del(ctx, key)
			if err != nil {
				return err
			}
			if !ok && i == 0 {
				keptLocked[s.Prefix] = true // the entry stays: so must all it needs
				break
			}
		}
		log.Info().Str("item", s.Prefix).Bool("kept_locked", keptLocked[s.Prefix]).Msg("retain deleted item")
	}
	// WAL only once the backups that needed it are gone; a backup whose
	// entry the store kept (locked) still needs its WAL.
	walKeys := p.walKeys
	if len(keptLocked) > 0 {
		walKeys = nil
		log.Warn().Int("backups", len(keptLocked)).Msg("locked backups kept: their WAL is kept too")
	}
	for _, group := range [][]string{walKeys, storedKeys(p.leftovers), p.pins, p.reports} {
		for _, key := range group {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := d.del(ctx, key); err != nil {
				return err
			}
		}
	}
	if o.Grace > 0 && o.DoBackups {
		// Multipart uploads a killed backup left behind.
		if _, err := r.CleanIncompleteBackups(ctx, o.Now.Add(-o.Grace)); err != nil {
			return err
		}
	}
	if p.res.Packs != nil && p.res.Packs.Apply != nil {
		if err := p.res.Packs.Apply(ctx); err != nil {
			return fmt.Errorf("file packs: %w", err)
		}
	}
	if o.ExtendLocks != nil && o.DoBackups {
		kept := append([]*catalog.Backup(nil), p.kept...)
		sort.Slice(kept, func(i, j int) bool { return kept[i].StartTime.Before(kept[j].StartTime) })
		n, err := o.ExtendLocks(ctx, kept, p.ix)
		p.res.Extended = n
		if err != nil {
			return fmt.Errorf("extend object locks: %w", err)
		}
	}
	return nil
}

func storedKeys(ss []*repo.Stored) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.DeleteOrder()...)
	}
	return out
}
