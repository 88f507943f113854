package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/backup"
	"github.com/pitr-dev/pitr/internal/catalog"
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
	Backups    []listBackup    `json:"backups"`
	Windows    []backup.Window `json:"recoverable_windows"`
	Timelines  []listTimeline  `json:"timelines"`
	Incomplete []string        `json:"incomplete_backups,omitempty"`
}

type listBackup struct {
	*catalog.Backup
	Usable  bool   `json:"usable"`
	WALGap  string `json:"missing_wal,omitempty"`
	WALLast string `json:"last_wal"`
}

func runList(ctx context.Context, e *env, asJSON bool) error {
	st, err := e.Store(ctx)
	if err != nil {
		return err
	}
	backups, err := backup.List(ctx, st)
	if err != nil {
		return err
	}
	ix, err := wal.LoadIndex(ctx, st)
	if err != nil {
		return err
	}
	incomplete, err := backup.Incomplete(ctx, st)
	if err != nil {
		return err
	}
	us := backup.Check(backups, ix)
	tls, tlNote, err := e.listTimelines(ctx, st, ix, backups)
	if err != nil {
		return err
	}
	out := listOutput{Backups: []listBackup{}, Windows: backup.Windows(us), Timelines: tls}
	for _, u := range us {
		lb := listBackup{Backup: u.Backup, Usable: u.Usable, WALLast: u.Chain.Last}
		if !u.Usable || u.Chain.MoreAfter {
			lb.WALGap = u.Chain.Missing
		}
		out.Backups = append(out.Backups, lb)
	}
	for id := range incomplete {
		out.Incomplete = append(out.Incomplete, id)
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tSTARTED\tDURATION\tTIMELINE\tSTART LSN\tEND LSN\tSIZE\tSTORED\tSTATUS")
	for _, b := range out.Backups {
		status := "ok"
		if !b.Usable {
			status = "WAL missing: " + b.WALGap
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.StartTime.Format(time.RFC3339),
			b.EndTime.Sub(b.StartTime).Round(time.Second), b.Timeline, b.StartLSN, b.EndLSN,
			humanBytes(b.Bytes), humanBytes(b.Stored), status)
	}
	tw.Flush()
	for _, id := range out.Incomplete {
		fmt.Fprintf(e.stdout, "incomplete: %s (interrupted or still running; not restorable)\n", id)
	}
	printTimelines(e.stdout, out.Timelines, tlNote)
	fmt.Fprintln(e.stdout, backup.Describe(out.Windows))
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
