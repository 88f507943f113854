package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/dump"
)

func newDumpCommand(e *env) *cobra.Command {
	var db string
	var noGlobals bool
	cmd := &cobra.Command{
		Use:   "dump --db NAME",
		Short: "Take a logical dump of one database (pg_dump -Fc) into the repository",
		Long: `Run pg_dump -Fc on one database and stream its output through zstd and age
into the repository, with no local copy. The dump is listed (pitr dumps) only
once it is stored; a pg_dump that fails or prints an error leaves nothing.
pg_dump comes from PATH, or /usr/lib/postgresql/<major>/bin when the one in
PATH is older than the server. Connection: pg_dsn (its database replaced by
--db), or PGHOST/PGPORT/PGUSER/PGPASSWORD.

Each run also stores the cluster's globals (pg_dumpall --globals-only: roles
with their password hashes, tablespaces) as the dump of "_globals", sealed
like every object; restore-dump --globals applies them to a new server.
Reading password hashes needs a superuser; --no-globals (or dump_globals:
false) skips them.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			return runDump(c.Context(), e, db, !noGlobals && (e.cfg.DumpGlobals == nil || *e.cfg.DumpGlobals))
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database to dump")
	cmd.Flags().BoolVar(&noGlobals, "no-globals", false, "do not also store roles and tablespaces (pg_dumpall --globals-only)")
	return cmd
}

func runDump(ctx context.Context, e *env, db string, globals bool) error {
	if db == "" {
		return fmt.Errorf("%w: dump needs --db NAME", errUsage)
	}
	r, err := e.WritableRepo(ctx)
	if err != nil {
		return err
	}
	opts := dump.Options{Repo: r, DSN: e.cfg.PGDSN.Reveal(), Database: db, PitrVersion: version}
	d, err := dump.Run(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "dump %s of %s complete: %s stored (%s before compression)\n",
		d.ID, d.Database, humanBytes(d.Stored), humanBytes(d.Bytes))
	if !globals {
		return nil
	}
	g, err := dump.Globals(ctx, opts)
	if err != nil {
		return fmt.Errorf("roles and tablespaces not stored (--no-globals or dump_globals: false skips them): %w", err)
	}
	fmt.Fprintf(e.stdout, "globals %s (roles, tablespaces) stored: %s\n", g.ID, humanBytes(g.Stored))
	return nil
}
