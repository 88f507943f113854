package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/dump"
)

type restoreDumpFlags struct {
	db, id, target string
	create, clean  bool
	globals        bool
}

func newRestoreDumpCommand(e *env) *cobra.Command {
	var f restoreDumpFlags
	cmd := &cobra.Command{
		Use:   "restore-dump --db NAME --target-db DB [--id ID] [--create] | --globals [--id ID]",
		Short: "Restore a logical dump into a database with pg_restore",
		Long: `Download a dump of --db (the newest, or --id), verify it, and pipe it into
pg_restore on --target-db, in one transaction: a tampered or truncated dump,
or a pg_restore error, leaves the target database as it was. --create makes
the target database first (and drops it again if the restore fails).
Encrypted dumps need age_identity_file. Connection: pg_dsn (its database
replaced by --target-db), or PGHOST/PGPORT/PGUSER/PGPASSWORD.

--globals applies the newest (or --id) stored roles and tablespaces with psql,
as a superuser, before database dumps are restored onto a new server: roles
and tablespaces that exist already are left exactly as they are (reported),
the others are created with their password hashes and memberships.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runRestoreDump(c.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.db, "db", "", "the dumped database")
	fl.StringVar(&f.id, "id", "latest", "dump id (see 'pitr dumps'), or latest")
	fl.StringVar(&f.target, "target-db", "", "database to restore into")
	fl.BoolVar(&f.create, "create", false, "create --target-db first")
	fl.BoolVar(&f.clean, "clean", false, "drop objects before recreating them (pg_restore --clean --if-exists)")
	fl.BoolVar(&f.globals, "globals", false, "apply the stored roles and tablespaces (pg_dumpall --globals-only) instead")
	return cmd
}

func runRestoreDump(ctx context.Context, e *env, f restoreDumpFlags) error {
	if f.globals {
		return runRestoreGlobals(ctx, e, f)
	}
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

func runRestoreGlobals(ctx context.Context, e *env, f restoreDumpFlags) error {
	if f.db != "" || f.target != "" || f.create || f.clean {
		return fmt.Errorf("%w: restore-dump --globals takes only --id", errUsage)
	}
	r, err := e.Repo(ctx, true)
	if err != nil {
		return err
	}
	res, err := dump.RestoreGlobals(ctx, dump.GlobalsOptions{Repo: r, DSN: e.cfg.PGDSN.Reveal(), ID: f.id})
	if err != nil {
		return err
	}
	list := func(names []string) string {
		if len(names) == 0 {
			return "none"
		}
		return strings.Join(names, ", ")
	}
	fmt.Fprintf(e.stdout, "globals %s applied: created roles: %s; existing roles left as they are: %s\n",
		res.Dump.ID, list(res.Created), list(res.Existing))
	if len(res.Tablespaces)+len(res.ExistingTablespaces) > 0 {
		fmt.Fprintf(e.stdout, "tablespaces created: %s; existing left as they are: %s (their directories must exist)\n",
			list(res.Tablespaces), list(res.ExistingTablespaces))
	}
	return nil
}
