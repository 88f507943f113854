package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/dump"
)

type restoreDumpFlags struct {
	db, id, target string
	create, clean  bool
}

func newRestoreDumpCommand(e *env) *cobra.Command {
	var f restoreDumpFlags
	cmd := &cobra.Command{
		Use:   "restore-dump --db NAME --target-db DB [--id ID] [--create]",
		Short: "Restore a logical dump into a database with pg_restore",
		Long: `Download a dump of --db (the newest, or --id), verify it, and pipe it into
pg_restore on --target-db, in one transaction: a tampered or truncated dump,
or a pg_restore error, leaves the target database as it was. --create makes
the target database first (and drops it again if the restore fails).
Encrypted dumps need age_identity_file. Connection: pg_dsn (its database
replaced by --target-db), or PGHOST/PGPORT/PGUSER/PGPASSWORD.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runRestoreDump(c.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.db, "db", "", "the dumped database")
	fl.StringVar(&f.id, "id", "latest", "dump id (see 'pitr dumps'), or latest")
	fl.StringVar(&f.target, "target-db", "", "database to restore into")
	fl.BoolVar(&f.create, "create", false, "create --target-db first")
	fl.BoolVar(&f.clean, "clean", false, "drop objects before recreating them (pg_restore --clean --if-exists)")
	return cmd
}

func runRestoreDump(ctx context.Context, e *env, f restoreDumpFlags) error {
	if f.db == "" || f.target == "" {
		return fmt.Errorf("%w: restore-dump needs --db NAME and --target-db DB", errUsage)
	}
	r, err := e.Repo(ctx, true)
	if err != nil {
		return err
	}
	d, err := dump.Restore(ctx, dump.RestoreOptions{
		Repo: r, DSN: e.cfg.PGDSN.Reveal(), Database: f.db, ID: f.id,
		TargetDB: f.target, Create: f.create, Clean: f.clean,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "dump %s of %s restored into %s\n", d.ID, d.Database, f.target)
	return nil
}
