package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/wal"
)

// listTimeline is one timeline in `pitr list`: where it branched (from its
// history file) and where its archived WAL ends.
type listTimeline struct {
	Timeline uint32 `json:"timeline"`
	Parent   uint32 `json:"parent,omitempty"` // absent: no parent
	// BranchKind is none (no parent), restore (recovery stopped at a
	// target: a rehearsal or a repair), failover (recovery ended without
	// a target: a promotion) or unknown (history not readable).
	BranchKind          string     `json:"branch_kind"`
	BranchedFromRestore bool       `json:"branched_from_restore"`
	BranchLSN           string     `json:"branch_lsn,omitempty"`
	BranchTime          *time.Time `json:"branch_time,omitempty"`
	Reason              string     `json:"reason,omitempty"`
	HistoryError        string     `json:"history_error,omitempty"`
	WALEndSegment       string     `json:"wal_end_segment,omitempty"`
	WALEndLSN           string     `json:"wal_end_lsn,omitempty"`
	WALEndTime          *time.Time `json:"wal_end_time,omitempty"`
}

// listTimelines reads the timelines' history files when the settings allow
// it (they are encrypted like every WAL file): without an identity, or
// when reading fails, the branch points are shown as unknown and note says
// why. ts is what was read; histories says the history files were read
// (so ts knows where each timeline branched).
func (e *env) listTimelines(ctx context.Context, r *repo.Repo, ix *wal.Index, backups []*catalog.Backup) (out []listTimeline, ts *wal.Timelines, histories bool, note string, err error) {
	var segSize int64
	if n := len(backups); n > 0 {
		segSize = backups[n-1].WALSegmentSize
	}
	var codec *envelope.Codec
	switch {
	case e.cfg.Encryption == "none":
		codec = &envelope.Codec{}
	case e.cfg.AgeIdentityFile != "":
		if codec, err = e.Codec(true); err != nil {
			codec, note = nil, fmt.Sprintf("timeline branch points not shown: %v", err)
		}
	default:
		note = "timeline branch points not shown: their history files are encrypted (set age_identity_file to read them)"
	}
	ts, err = repo.New(r.Store(), codec).Timelines(ctx, ix, segSize)
	histories = err == nil && codec != nil
	if err != nil && codec != nil {
		note = fmt.Sprintf("timeline branch points not shown: %v", err)
		ts, err = repo.New(r.Store(), nil).Timelines(ctx, ix, segSize)
	}
	if err != nil {
		return nil, nil, false, "", err
	}
	out = []listTimeline{}
	for _, t := range ts.All() {
		lt := listTimeline{Timeline: uint32(t.Timeline), Parent: uint32(t.Parent), BranchKind: string(t.Kind),
			BranchedFromRestore: t.Kind == wal.BranchRestore, Reason: t.Reason, WALEndSegment: t.LastSegment}
		if t.Parent != 0 {
			lt.BranchLSN = t.BranchLSN.String()
		}
		if !t.BranchTime.IsZero() {
			bt := t.BranchTime.UTC()
			lt.BranchTime = &bt
		}
		if t.HistoryErr != nil {
			lt.HistoryError = t.HistoryErr.Error()
		}
		if t.LastSegment != "" {
			lt.WALEndLSN = t.EndLSN.String()
		}
		if !t.EndTime.IsZero() {
			et := t.EndTime.UTC()
			lt.WALEndTime = &et
		}
		out = append(out, lt)
	}
	return out, ts, histories, note, nil
}

// printTimelines writes the timelines section of `pitr list`.
func printTimelines(w io.Writer, tls []listTimeline, note string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIMELINE\tPARENT\tBRANCH LSN\tBRANCHED AT\tBRANCH\tWAL ENDS\tLAST STORED")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, t := range tls {
		parent, kind := "-", t.BranchKind
		if t.Parent != 0 {
			parent = fmt.Sprint(t.Parent)
		}
		switch {
		case t.BranchedFromRestore:
			kind = "restore: " + t.Reason
		case t.BranchKind == string(wal.BranchFailover):
			kind = "failover: " + t.Reason
		}
		end := dash(t.WALEndLSN)
		if t.WALEndSegment != "" {
			end += " (" + t.WALEndSegment + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Timeline, parent, dash(t.BranchLSN), at(t.BranchTime), kind, end, at(t.WALEndTime))
	}
	tw.Flush()
	if note != "" {
		fmt.Fprintln(w, note)
	}
}
