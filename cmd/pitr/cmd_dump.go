package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/dump"
)

func newDumpCommand(e *env) *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "dump --db NAME",
		Short: "Take a logical dump of one database (pg_dump -Fc) into the repository",
		Long: `Run pg_dump -Fc on one database and stream its output through zstd and age
into the repository, with no local copy. The dump is listed (pitr dumps) only
once it is stored; a pg_dump that fails or prints an error leaves nothing.
pg_dump comes from PATH, or /usr/lib/postgresql/<major>/bin when the one in
PATH is older than the server. Connection: pg_dsn (its database replaced by
--db), or PGHOST/PGPORT/PGUSER/PGPASSWORD.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runDump(c.Context(), e, db) },
	}
	cmd.Flags().StringVar(&db, "db", "", "database to dump")
	return cmd
}

func runDump(ctx context.Context, e *env, db string) error {
	if db == "" {
		return fmt.Errorf("%w: dump needs --db NAME", errUsage)
	}
	r, err := e.WritableRepo(ctx)
	if err != nil {
		return err
	}
	d, err := dump.Run(ctx, dump.Options{Repo: r, DSN: e.cfg.PGDSN.Reveal(), Database: db, PitrVersion: version})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "dump %s of %s complete: %s stored (%s before compression)\n",
		d.ID, d.Database, humanBytes(d.Stored), humanBytes(d.Bytes))
	return nil
}
