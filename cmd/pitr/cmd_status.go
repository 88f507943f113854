package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func newStatusCommand(e *env) *cobra.Command {
	var asJSON bool
	var repos []string
	cmd := &cobra.Command{
		Use:   "status [--json] [--repo URL]...",
		Short: "Show the repository's backups, recoverable window, RPO, last verify and drill, dumps and file sets",
		Long: `Show, on one screen, what the repository holds and how healthy it is: the
repository (and the off-site one, with how far behind it is), each base backup
with the retention rule that keeps it, the recoverable window and timelines,
the current RPO (how long ago the newest WAL was stored), the last verify and
restore drill (with its RTO), and the newest dump of each database and snapshot
of each file set. It reads only plaintext (listings, entries, reports): no
identity is needed. --repo, repeatable, names the repositories to show (each
labelled by its prefix's last element, or by the monitor: entry of that URL);
without it, the monitor: section's, else the repository. --json prints the
status (a list of them for several repositories).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runStatus(c.Context(), e, repos, asJSON) },
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.Flags().StringArrayVar(&repos, "repo", nil, "repository URL; repeat for several (default: monitor:, else repo)")
	return cmd
}

func runStatus(ctx context.Context, e *env, urls []string, asJSON bool) error {
	ms, err := e.monitoredRepos(urls)
	if err != nil {
		return err
	}
	all, err := e.gatherAll(ctx, ms)
	if err != nil {
		return err
	}
	if asJSON {
		if len(all) == 1 {
			return writeJSON(e.stdout, all[0])
		}
		return writeJSON(e.stdout, all)
	}
	for i, s := range all {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		printStatus(e.stdout, s)
	}
	if len(all) == 1 && all[0].Error != "" {
		return errors.New(all[0].Error)
	}
	return nil
}
