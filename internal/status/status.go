// Package status gathers what a repository holds into one typed Status,
// for pitr status (a person), pitr check (Nagios) and the daemon's metrics
// of monitored repositories. It needs no identity: everything it reads is
// plaintext (listings, catalog entries, cluster bindings, verify and drill
// reports), so it runs on a monitoring host that holds only the public
// recipient, or nothing at all. It never writes.
package status

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/retention"
	"github.com/pitr-dev/pitr/wal"
)

// Options says what to gather and how to label it.
type Options struct {
	Name string // the cluster's label (default: the repository URL)
	URL  string // the repository's URL, as shown
	// Histories reads the timeline history files with the repository's
	// codec (set it when the identity is there or encryption is off): the
	// windows then follow the timeline restore follows by default.
	// Without it, or if reading fails, windows follow the highest timeline
	// stored at each segment, as pitr list does without an identity.
	Histories bool
	// Offsite is the off-site repository (nil: none configured) and
	// OffsiteURL its URL; its newest backup and WAL are compared with the
	// primary's.
	Offsite    *repo.Repo
	OffsiteURL string
	OffsiteErr error // it could not be opened: recorded in Status.Offsite
	// Retention is the backups' retention policy (retention.backups): each
	// backup's KeptBy is the rules that keep it, pins included, as pitr
	// retain would decide now (retention.Plan); Loc is the time zone of
	// its calendar days (nil: UTC).
	// nil: not computed (a monitored repository's policy is its own
	// host's).
	Retention *retention.Policy
	Loc       *time.Location
	Now       func() time.Time
}

// Status is one repository's state at Checked.
type Status struct {
	Name    string    `json:"name"`
	Repo    string    `json:"repo"`
	Checked time.Time `json:"checked"`
	// Error is set when the repository could not be read (then nothing
	// else is); pitr check reports it as UNKNOWN.
	Error string `json:"error,omitempty"`

	SystemID  string `json:"system_identifier,omitempty"` // the bound cluster
	PGVersion int    `json:"pg_version,omitempty"`

	Backups []Backup       `json:"backups"` // oldest first
	Damaged []repo.Damaged `json:"damaged_backups"`
	Windows []repo.Window  `json:"recoverable_windows"`
	// WindowsTimeline is the timeline the windows follow (0: the
	// histories were not read).
	WindowsTimeline uint32     `json:"windows_timeline"`
	Timelines       []Timeline `json:"timelines"`
	WAL             WAL        `json:"wal"`
	Dumps           []Newest   `json:"dumps"`     // by database
	FileSets        []Newest   `json:"file_sets"` // by set
	Verify          *Report    `json:"last_verify"`
	Drill           *Report    `json:"last_drill"`
	Offsite         *Offsite   `json:"offsite,omitempty"`
}

// Backup is one base backup.
type Backup struct {
	ID        string    `json:"id"`
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
	Timeline  uint32    `json:"timeline"`
	Bytes     int64     `json:"bytes"`
	Stored    int64     `json:"stored"`
	Usable    bool      `json:"usable"`
	Status    string    `json:"status"` // "ok", or why it is not restorable
	// KeptBy are the retention rules that keep it now ("daily",
	// "pinned", "all" when there is no policy...; see retention.Plan);
	// empty: the policy deletes it at the next pitr retain.
	KeptBy []string `json:"kept_by"`
}

// Timeline is one timeline with archived WAL.
type Timeline struct {
	Timeline   uint32     `json:"timeline"`
	Parent     uint32     `json:"parent,omitempty"`
	BranchKind string     `json:"branch_kind"`
	WALEnd     string     `json:"wal_end_segment,omitempty"`
	WALEndTime *time.Time `json:"wal_end_time,omitempty"`
}

// WAL is the archive's state.
type WAL struct {
	Newest     string     `json:"newest,omitempty"` // the segment stored last
	NewestTime *time.Time `json:"newest_time,omitempty"`
	// AgeSeconds is now minus NewestTime: the current RPO, what a lost
	// server could take with it (-1: no WAL).
	AgeSeconds float64  `json:"age_seconds"`
	Gaps       []string `json:"gaps"`      // missing segments with later WAL stored after them
	Conflicts  []string `json:"conflicts"` // segments stored twice with different content
}

// Newest is a kind of entry for one database or file set: how many, and
// the newest readable one.
type Newest struct {
	Name    string    `json:"name"`  // database or set
	Count   int       `json:"count"` // entries, readable or not
	ID      string    `json:"newest_id"`
	EndTime time.Time `json:"newest_time"`
	Bytes   int64     `json:"bytes"` // of the newest
	// Damaged counts the entries newer than the newest readable one that
	// cannot be read (all of them when none is readable).
	Damaged int `json:"damaged,omitempty"`
}

// Report is the newest verify or drill report.
type Report struct {
	ID         string     `json:"id"`
	OK         bool       `json:"ok"`
	Finished   time.Time  `json:"finished"`
	AgeSeconds float64    `json:"age_seconds"`
	Summary    string     `json:"summary,omitempty"`
	Problems   []string   `json:"problems,omitempty"`
	Decrypted  bool       `json:"decrypted,omitempty"`
	Backup     string     `json:"backup,omitempty"`
	Reached    *time.Time `json:"reached,omitempty"`
	RTOSeconds float64    `json:"rto_seconds,omitempty"`
}

// Offsite compares the off-site repository with the primary.
type Offsite struct {
	Repo  string `json:"repo"`
	Error string `json:"error,omitempty"` // it could not be read
	// NewestBackup is the newest backup it holds ("" none).
	NewestBackup string `json:"newest_backup,omitempty"`
	// MissingBackups are primary backups it lacks; MissingWAL the oldest
	// primary segment it lacks.
	MissingBackups []string `json:"missing_backups"`
	MissingWAL     string   `json:"missing_wal,omitempty"`
	// LagSeconds is how long the oldest thing it lacks has been in the
	// primary (the segment's store time, the backup's end); 0: up to date.
	LagSeconds float64 `json:"lag_seconds"`
}

// NewestBackup is the newest backup that is usable, or nil.
func (s *Status) NewestBackup() *Backup {
	for i := len(s.Backups) - 1; i >= 0; i-- {
		if s.Backups[i].Usable {
			return &s.Backups[i]
		}
	}
	return nil
}

// Gather reads r's state. A repository that cannot be read gives an
// error (the caller may record it in Status.Error); a damaged entry, a
// missing segment or an unreadable off-site repository are part of the
// Status.
func Gather(ctx context.Context, r *repo.Repo, opts Options) (*Status, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	s := &Status{Name: opts.Name, Repo: opts.URL, Checked: now().UTC(), Backups: []Backup{},
		Timelines: []Timeline{}, Dumps: []Newest{}, FileSets: []Newest{}}
	if s.Name == "" {
		s.Name = opts.URL
	}
	if err := cluster(ctx, r, s); err != nil {
		return nil, err
	}
	l, err := r.ListBackups(ctx)
	if err != nil {
		return nil, err
	}
	s.Damaged = l.Damaged
	ix, err := r.WALIndex(ctx)
	if err != nil {
		return nil, err
	}
	if err := walState(ctx, r, ix, l, s, opts); err != nil {
		return nil, err
	}
	rules, err := keptBy(ctx, r, l.Backups, opts, s.Checked)
	if err != nil {
		return nil, err
	}
	for _, u := range l.Check(ix) {
		b := Backup{ID: u.Backup.ID, StartTime: u.Backup.StartTime, EndTime: u.Backup.EndTime, Timeline: u.Backup.Timeline,
			Bytes: u.Backup.Bytes, Stored: u.Backup.Stored, Usable: u.Usable, Status: "ok", KeptBy: rules[u.Backup.ID]}
		switch {
		case u.Parts != "":
			b.Status = u.Parts
		case u.Conflict != "":
			b.Status = "WAL conflict: " + u.Conflict
		case !u.Usable:
			b.Status = "WAL missing: " + u.Chain.Missing
		}
		if b.KeptBy == nil {
			b.KeptBy = []string{}
		}
		s.Backups = append(s.Backups, b)
	}
	if err := entries(ctx, r, s); err != nil {
		return nil, err
	}
	if s.Verify, err = report(ctx, r, catalog.ReportVerify, s.Checked); err != nil {
		return nil, err
	}
	if s.Drill, err = report(ctx, r, catalog.ReportDrill, s.Checked); err != nil {
		return nil, err
	}
	if opts.OffsiteErr != nil {
		s.Offsite = &Offsite{Repo: opts.OffsiteURL, Error: opts.OffsiteErr.Error(), MissingBackups: []string{}}
	} else if opts.Offsite != nil {
		s.Offsite = offsite(ctx, opts.Offsite, opts.OffsiteURL, l, ix, s.Checked)
	}
	return s, nil
}

// keptBy returns, by backup id, the retention rules that keep it.
func keptBy(ctx context.Context, r *repo.Repo, backups []*catalog.Backup, opts Options, now time.Time) (map[string][]string, error) {
	if opts.Retention == nil {
		return nil, nil
	}
	pins, err := r.ListPins(ctx)
	if err != nil {
		return nil, err
	}
	items := make([]retention.Item, 0, len(backups))
	for _, b := range backups {
		items = append(items, retention.Item{Kind: retention.KindBackup, ID: b.ID, Time: b.StartTime, Timeline: b.Timeline,
			Pinned: pins.Pinned(catalog.PinRef{Kind: catalog.PinBackup, ID: b.ID})})
	}
	out := map[string][]string{}
	for _, d := range retention.Plan(items, *opts.Retention, now, opts.Loc) {
		out[d.Item.ID] = d.Reasons
	}
	return out, nil
}

// cluster fills the bound cluster's system identifier and version.
func cluster(ctx context.Context, r *repo.Repo, s *Status) error {
	objs, err := r.Bindings(ctx)
	if err != nil {
		return err
	}
	cur, ok := catalog.CurrentBinding(objs)
	if !ok {
		return nil
	}
	s.SystemID = cur.SystemID
	if b, err := r.ReadBinding(ctx, cur); err == nil {
		s.PGVersion = b.PGVersion
	}
	return nil
}

// walState fills the windows, timelines, newest WAL, gaps and conflicts,
// as pitr list computes them.
func walState(ctx context.Context, r *repo.Repo, ix *wal.Index, l *repo.Backups, s *Status, opts Options) error {
	var segSize int64
	if n := len(l.Backups); n > 0 {
		segSize = l.Backups[n-1].WALSegmentSize
	}
	reader := repo.New(r.Store(), nil)
	histories := false
	if opts.Histories && r.Codec() != nil {
		reader, histories = r, true
	}
	ts, err := reader.Timelines(ctx, ix, segSize)
	if err != nil && histories {
		histories = false
		ts, err = repo.New(r.Store(), nil).Timelines(ctx, ix, segSize)
	}
	if err != nil {
		return err
	}
	us := l.Check(ix)
	s.Windows = repo.Windows(us)
	if histories {
		var tli wal.Timeline
		s.Windows, tli = repo.LatestWindows(us, ix, ts)
		s.WindowsTimeline = uint32(tli)
	}
	for _, t := range ts.All() {
		st := Timeline{Timeline: uint32(t.Timeline), Parent: uint32(t.Parent), BranchKind: string(t.Kind), WALEnd: t.LastSegment}
		if !t.EndTime.IsZero() {
			et := t.EndTime.UTC()
			st.WALEndTime = &et
		}
		s.Timelines = append(s.Timelines, st)
	}
	s.WAL = WAL{AgeSeconds: -1, Gaps: []string{}, Conflicts: ix.Conflicts()}
	if name, at := ix.Newest(); name != "" {
		at = at.UTC()
		s.WAL.Newest, s.WAL.NewestTime = name, &at
		s.WAL.AgeSeconds = max(0, s.Checked.Sub(at).Seconds())
	}
	for _, u := range us {
		if u.Chain.MoreAfter && !slices.Contains(s.WAL.Gaps, u.Chain.Missing) {
			s.WAL.Gaps = append(s.WAL.Gaps, u.Chain.Missing)
		}
	}
	sort.Strings(s.WAL.Gaps)
	return nil
}

// entries fills the dumps per database and snapshots per file set,
// reading only the newest entry of each (and those newer that are
// damaged).
func entries(ctx context.Context, r *repo.Repo, s *Status) error {
	dumps, err := r.NewestDumps(ctx)
	if err != nil {
		return err
	}
	for _, n := range dumps {
		x := Newest{Name: n.Name, Count: n.Entries, Damaged: len(n.Damaged)}
		if d := n.Dump; d != nil {
			x.ID, x.EndTime, x.Bytes = d.ID, d.EndTime, d.Bytes
		}
		s.Dumps = append(s.Dumps, x)
	}
	snaps, err := r.NewestSnapshots(ctx)
	if err != nil {
		return err
	}
	for _, n := range snaps {
		x := Newest{Name: n.Name, Count: n.Entries, Damaged: len(n.Damaged)}
		if sn := n.Snapshot; sn != nil {
			x.ID, x.EndTime, x.Bytes = sn.ID, sn.EndTime, sn.Bytes
		}
		s.FileSets = append(s.FileSets, x)
	}
	return nil
}

// report reads the newest report of kind. A listing that fails fails
// Gather (the repository cannot be read); a newest report that cannot be
// read counts as a failed run: it proves nothing.
func report(ctx context.Context, r *repo.Repo, kind string, now time.Time) (*Report, error) {
	keys, err := r.ListReports(ctx, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s reports: %w", kind, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	rep, err := r.LatestReport(ctx, kind)
	if err != nil || rep == nil {
		return &Report{Summary: fmt.Sprintf("newest %s report unreadable: %v", kind, err), Problems: []string{fmt.Sprint(err)}}, nil
	}
	out := &Report{ID: rep.ID, OK: rep.OK, Finished: rep.Finished.UTC(), Summary: rep.Summary, Problems: rep.Problems,
		Decrypted: rep.Decrypted, Backup: rep.Backup, Reached: rep.Reached, RTOSeconds: rep.RTOSeconds}
	out.AgeSeconds = max(0, now.Sub(rep.Finished).Seconds())
	return out, nil
}

// offsite compares the off-site repository with the primary's backups
// and WAL index.
func offsite(ctx context.Context, o *repo.Repo, url string, l *repo.Backups, ix *wal.Index, now time.Time) *Offsite {
	out := &Offsite{Repo: url, MissingBackups: []string{}}
	ol, err := o.ListBackups(ctx)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	oix, err := o.WALIndex(ctx)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	have := map[string]bool{}
	for _, b := range ol.Backups {
		have[b.ID] = true
		out.NewestBackup = b.ID
	}
	var oldest time.Time
	for _, b := range l.Backups {
		if !have[b.ID] {
			out.MissingBackups = append(out.MissingBackups, b.ID)
			if oldest.IsZero() || b.EndTime.Before(oldest) {
				oldest = b.EndTime
			}
		}
	}
	if name, at := ix.OldestMissing(oix); name != "" {
		out.MissingWAL = name
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	if !oldest.IsZero() {
		out.LagSeconds = max(0, now.Sub(oldest).Seconds())
	}
	return out
}
