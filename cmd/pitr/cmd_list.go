package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/wal"
)

func newListCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List backups, oldest first, and the recoverable window",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return runList(c.Context(), e, asJSON) },
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

type listOutput struct {
	Backups []listBackup  `json:"backups"`
	Windows []repo.Window `json:"recoverable_windows"`
	// WindowsTimeline is the timeline the windows follow: the one restore
	// follows by default (0: not known, the histories were not read; the
	// windows then follow the highest timeline stored at each segment).
	WindowsTimeline uint32         `json:"windows_timeline"`
	Timelines       []listTimeline `json:"timelines"`
	Incomplete      []string       `json:"incomplete_backups"`
	Damaged         []repo.Damaged `json:"damaged_backups"`
	WALConflicts    []string       `json:"wal_conflicts"` // segments stored twice with different content
	WALGaps         []string       `json:"wal_gaps"`      // missing segments with later WAL stored after them
}

type listBackup struct {
	*catalog.Backup
	Usable      bool   `json:"usable"`
	Status      string `json:"status"` // "ok", or why the backup is not restorable
	WALGap      string `json:"missing_wal,omitempty"`
	WALLast     string `json:"last_wal"`
	WALConflict string `json:"wal_conflict,omitempty"`
	Parts       string `json:"parts_problem,omitempty"` // e.g. "part missing: base.tar"
}

func runList(ctx context.Context, e *env, asJSON bool) error {
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	l, err := r.ListBackups(ctx)
	if err != nil {
		return err
	}
	ix, err := r.WALIndex(ctx)
	if err != nil {
		return err
	}
	us := l.Check(ix)
	tls, ts, histories, tlNote, err := e.listTimelines(ctx, r, ix, l.Backups)
	if err != nil {
		return err
	}
	out := listOutput{Backups: []listBackup{}, Windows: repo.Windows(us), Timelines: tls,
		Incomplete: []string{}, Damaged: l.Damaged, WALConflicts: ix.Conflicts(), WALGaps: []string{}}
	if histories {
		var tli wal.Timeline
		out.Windows, tli = repo.LatestWindows(us, ix, ts)
		out.WindowsTimeline = uint32(tli)
	}
	for _, u := range us {
		lb := listBackup{Backup: u.Backup, Usable: u.Usable, WALLast: u.Chain.Last, WALConflict: u.Conflict, Parts: u.Parts}
		if !u.Usable || u.Chain.MoreAfter {
			lb.WALGap = u.Chain.Missing
		}
		if u.Chain.MoreAfter && !slices.Contains(out.WALGaps, u.Chain.Missing) {
			out.WALGaps = append(out.WALGaps, u.Chain.Missing)
		}
		switch {
		case u.Parts != "":
			lb.Status = u.Parts
		case u.Conflict != "":
			lb.Status = "WAL conflict: " + u.Conflict
		case !u.Usable:
			lb.Status = "WAL missing: " + u.Chain.Missing
		default:
			lb.Status = "ok"
		}
		out.Backups = append(out.Backups, lb)
	}
	for id := range l.Incomplete {
		out.Incomplete = append(out.Incomplete, id)
	}
	sort.Strings(out.Incomplete)
	if asJSON {
		return writeJSON(e.stdout, out)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tSTARTED\tDURATION\tTIMELINE\tSTART LSN\tEND LSN\tSIZE\tSTORED\tSTATUS")
	for _, b := range out.Backups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.StartTime.Format(time.RFC3339),
			b.EndTime.Sub(b.StartTime).Round(time.Second), b.Timeline, b.StartLSN, b.EndLSN,
			humanBytes(b.Bytes), humanBytes(b.Stored), b.Status)
	}
	tw.Flush()
	for _, d := range out.Damaged {
		fmt.Fprintf(e.stdout, "damaged: %s (%s; skipped, not restorable)\n", d.ID, d.Reason)
	}
	for _, id := range out.Incomplete {
		fmt.Fprintf(e.stdout, "incomplete: %s (interrupted or still running; not restorable)\n", id)
	}
	for _, name := range out.WALConflicts {
		fmt.Fprintf(e.stdout, "WAL conflict: %s is stored twice with different content (wal-fetch refuses it; recovery cannot pass it)\n", name)
	}
	for _, name := range out.WALGaps {
		fmt.Fprintf(e.stdout, "WAL gap: %s is missing; recovery cannot reach the WAL stored after it\n", name)
	}
	printTimelines(e.stdout, out.Timelines, tlNote)
	desc := repo.Describe(out.Windows)
	if len(out.Timelines) > 1 && out.WindowsTimeline != 0 && len(out.Windows) > 0 {
		desc += fmt.Sprintf(" on timeline %d (the one restore follows; another: restore --timeline N)", out.WindowsTimeline)
	}
	fmt.Fprintln(e.stdout, desc)
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
