package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

func newDumpsCommand(e *env) *cobra.Command {
	var db string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dumps [--db NAME]",
		Short: "List logical dumps by database, oldest first",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return runDumps(c.Context(), e, db, asJSON) },
	}
	cmd.Flags().StringVar(&db, "db", "", "only this database's dumps")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

func runDumps(ctx context.Context, e *env, db string, asJSON bool) error {
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	dumps, damaged, err := r.ListDumps(ctx, db)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, struct {
			Dumps   []*catalog.Dump    `json:"dumps"`
			Damaged []repo.DamagedDump `json:"damaged_dumps"`
		}{dumps, damaged})
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATABASE\tDUMP\tSTARTED\tDURATION\tSIZE\tSTORED")
	for _, d := range dumps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Database, d.ID, d.StartTime.Format(time.RFC3339),
			d.EndTime.Sub(d.StartTime).Round(time.Second), humanBytes(d.Bytes), humanBytes(d.Stored))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range damaged {
		fmt.Fprintf(e.stdout, "damaged: %s of %s (%s; skipped, not restorable)\n", d.ID, d.Database, d.Reason)
	}
	return nil
}
