package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/app"
	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/dump"
	"github.com/pitr-dev/pitr/internal/files"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/restore"
	"github.com/pitr-dev/pitr/wal"
)

// appRestoreFlags are the flags of app restore.
type appRestoreFlags struct {
	to, root, pgdata, dsn string
	archiveMode           string
	force, noCluster      bool
	dumps, noGlobals      bool
	keep                  []string
}

func newAppRestoreCommand(e *env) *cobra.Command {
	var f appRestoreFlags
	cmd := &cobra.Command{
		Use:   "restore NAME --to latest|TIME|ID --root DIR [--force] [--keep-settings PATH]...",
		Short: "Restore an application (its cluster, file sets and dumps) to one app point",
		Long: `Bring the application NAME back as of one app point (see 'pitr app list'):

  --to latest   the newest app point; the database recovers exactly to its
                restore point, on its timeline
  --to ID       that app point, the same way
  --to TIME     the files from the newest app point at or before TIME, the
                database to TIME itself (recovery_target_time); pitr says how
                far apart the two are

Each file set's snapshot goes to its original paths under --root (/srv/app/.env
as DIR/srv/app/.env); with --force and no --root, in place. Modes and owners
(as root) come back as recorded. --keep-settings PATH (an original absolute
path, repeatable) leaves PATH as the target holds it when it exists there.

The cluster goes to --pgdata, by default the app's database.pgdata under --root
(in place with --force and no --root); the server is not started: start it to
recover. An app point taken on another PostgreSQL major than this machine runs
is refused (restore its logical dumps instead: --no-cluster --dumps);
differences of the app's version commands are warnings. Once started, the
cluster archives into this repository as production does, unless
--archive-mode off (a rehearsal). --dumps restores the
app point's logical dumps into the running server at --dsn (default pg_dsn),
creating each database (with --force, over an existing one: pg_restore
--clean); they are restored by default when the app has no cluster. The
app point's roles and tablespaces (pg_dumpall --globals-only) are applied
first, so the objects' owners exist; roles the server has already are
left as they are (their passwords too); --no-globals skips them.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error { return runAppRestore(c.Context(), e, args[0], f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.to, "to", "latest", "latest, an app point id, or a time (RFC 3339 or \"2026-11-22 14:01:00[+TZ]\", UTC when the zone is absent)")
	fl.StringVar(&f.root, "root", "", "directory the files (and by default the cluster) go under; required unless --force")
	fl.BoolVar(&f.force, "force", false, "replace what exists: files under --root (in place without --root), a stopped cluster at --pgdata")
	fl.StringArrayVar(&f.keep, "keep-settings", nil, "an original absolute path left as the target holds it when it exists there (repeatable)")
	fl.StringVar(&f.pgdata, "pgdata", "", "data directory for the cluster (default: the app's database.pgdata under --root)")
	fl.BoolVar(&f.noCluster, "no-cluster", false, "restore no cluster (the files, and the dumps with --dumps)")
	fl.BoolVar(&f.dumps, "dumps", false, "restore the app point's logical dumps into the server at --dsn (default when the app has no cluster)")
	fl.StringVar(&f.dsn, "dsn", "", "server the dumps go into (default: pg_dsn)")
	fl.BoolVar(&f.noGlobals, "no-globals", false, "with the dumps, do not apply the app point's roles and tablespaces first")
	fl.StringVar(&f.archiveMode, "archive-mode", "", "off: the restored cluster does not archive (a rehearsal); keep (the default): once started it archives into the repository, as production")
	return cmd
}

// parseAppTo parses app restore --to: latest, an app point id or a time.
func parseAppTo(s string) (app.RestoreTo, error) {
	switch {
	case s == "" || s == "latest":
		return app.RestoreTo{}, nil
	case catalog.ValidBackupID(s):
		return app.RestoreTo{ID: s}, nil
	}
	t, err := restore.ParseTarget(s)
	if err != nil || t.Kind != restore.Time {
		return app.RestoreTo{}, fmt.Errorf("%w: --to %q: want latest, an app point id (see 'pitr app list') or a time, RFC 3339 or \"2026-11-22 14:01:00[+TZ]\" (UTC when the zone is absent)", errUsage, s)
	}
	return app.RestoreTo{Time: t.Time}, nil
}

func runAppRestore(ctx context.Context, e *env, name string, f appRestoreFlags) error {
	if !catalog.ValidSetName(name) {
		return fmt.Errorf("%w: app name %q: want lower-case letters, digits, _ and -", errUsage, name)
	}
	to, err := parseAppTo(f.to)
	if err != nil {
		return err
	}
	root := f.root
	switch {
	case root == "" && !f.force:
		return fmt.Errorf("%w: app restore needs --root DIR (or --force to restore in place)", errUsage)
	case root == "":
		root = "/"
	case !filepath.IsAbs(root):
		if root, err = filepath.Abs(root); err != nil {
			return err
		}
	}
	for _, p := range f.keep {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%w: --keep-settings %q: want an original absolute path, e.g. /etc/app/settings.py", errUsage, p)
		}
	}
	// The archive line is printed only when a cluster is restored.
	var archiveLine bytes.Buffer
	archiveOff, err := chooseArchiveMode(&env{stdout: &archiveLine, stderr: e.stderr, stdin: e.stdin}, f.archiveMode, false)
	if err != nil {
		return err
	}
	cfgApp := e.cfg.App(name)
	pgdata := f.pgdata
	if pgdata == "" && cfgApp != nil && cfgApp.Database.PGData != "" {
		pgdata = filepath.Join(root, cfgApp.Database.PGData)
	}
	dumps := f.dumps || (cfgApp != nil && !cfgApp.Database.Cluster && len(cfgApp.Database.Dumps) > 0)
	dsn := f.dsn
	if dsn == "" {
		dsn = e.cfg.PGDSN.Reveal()
	}
	var versions []app.Version
	if cfgApp != nil {
		for _, n := range slices.Sorted(maps.Keys(cfgApp.Versions)) {
			versions = append(versions, app.Version{Name: n, Command: cfgApp.Versions[n]})
		}
	}

	src, err := e.openRestoreSource(ctx, "restoring needs")
	if err != nil {
		return err
	}
	r, self, restoreCmd, reads := src.repo, src.self, src.command, src.reads

	restoreDB := func(ctx context.Context, req app.DBRequest) (app.DBResult, error) {
		if err := restore.Preflight(ctx, restore.PreflightOptions{DataDir: req.PGData, Read: reads, Exec: []string{self}}); err != nil {
			return app.DBResult{}, err
		}
		fmt.Fprint(e.stdout, archiveLine.String())
		opts := restore.Options{Repo: r, DataDir: req.PGData, Force: req.Force, RestoreCommand: restoreCmd, ArchiveOff: archiveOff}
		if req.Time.IsZero() {
			// Exactly to the restore point, on its timeline, from the newest
			// backup that ended before it (a restore point target alone
			// would not exclude later backups).
			rp := req.RestorePoint
			lsn, err := pglogrepl.ParseLSN(rp.LSN)
			if err != nil {
				return app.DBResult{}, fmt.Errorf("restore point %s: LSN %q: %w", rp.Name, rp.LSN, err)
			}
			opts.Timeline = restore.TimelineChoice{Kind: restore.TimelineNumber, N: wal.Timeline(rp.Timeline)}
			plan, err := restore.Choose(ctx, r, restore.Target{Kind: restore.LSN, LSN: lsn}, "", opts.Timeline)
			if err != nil {
				return app.DBResult{}, err
			}
			opts.BackupID = plan.Backup.ID
			opts.Target = restore.Target{Kind: restore.Name, Name: rp.Name}
		} else {
			opts.Target = restore.Target{Kind: restore.Time, Time: req.Time}
			opts.Out = e.stdout // the timeline chosen, and the others
		}
		bar := newMeter(e, "restore", 0)
		opts.Progress = bar
		res, err := restore.Run(ctx, opts)
		progress.Done(bar)
		if err != nil {
			return app.DBResult{}, err
		}
		return app.DBResult{Backup: res.Plan.Backup.ID, Files: res.Files, Bytes: res.Bytes}, nil
	}
	restoreFiles := func(ctx context.Context, req app.FilesRequest) (app.FilesResult, error) {
		bar := newMeter(e, "files restore "+req.Snapshot.Set, 0)
		st, err := files.Restore(ctx, r, files.RestoreOptions{Snapshot: req.Snapshot, Target: req.Target, Force: req.Force, Exclude: req.Exclude, Progress: bar})
		progress.Done(bar)
		return app.FilesResult{Files: st.Files, Bytes: st.Bytes}, err
	}
	restoreDump := func(ctx context.Context, d catalog.AppDump) error {
		_, err := dump.Restore(ctx, dump.RestoreOptions{Repo: r, DSN: dsn, Database: d.Database, ID: d.ID,
			TargetDB: d.Database, Create: !f.force, Clean: f.force})
		return err
	}

	restoreGlobals := func(ctx context.Context, d catalog.AppDump) (app.GlobalsResult, error) {
		g, err := dump.RestoreGlobals(ctx, dump.GlobalsOptions{Repo: r, DSN: dsn, ID: d.ID})
		if err != nil {
			return app.GlobalsResult{}, err
		}
		return app.GlobalsResult{Created: g.Created, Existing: g.Existing}, nil
	}

	res, err := app.Restore(ctx, app.RestoreOptions{
		Repo: r, App: name, To: to, Root: root, Force: f.force, KeepSettings: f.keep,
		PGData: pgdata, SkipCluster: f.noCluster, Dumps: dumps,
		Installed: app.InstalledMajors, Versions: versions,
		RestoreDB: restoreDB, RestoreFiles: restoreFiles, RestoreDump: restoreDump,
		RestoreGlobals: restoreGlobals, NoGlobals: f.noGlobals,
		Out: e.stdout,
	})
	if err != nil {
		return err
	}
	writeAppRestoreReport(e, res)
	return nil
}

// writeAppRestoreReport prints what came back, one line per part.
func writeAppRestoreReport(e *env, res *app.RestoreResult) {
	a := res.Choice.Point
	fmt.Fprintf(e.stdout, "app %s restored from app point %s:\n", a.App, a.ID)
	for _, p := range res.Parts {
		at := p.At.UTC().Format(time.RFC3339)
		switch p.Kind {
		case "database":
			to := "its restore point " + a.RestorePoint.Name + " (" + at + ")"
			if !res.Choice.DBTime.IsZero() {
				to = at
			}
			fmt.Fprintf(e.stdout, "  database: backup %s, %d files (%s) into %s; recovers to %s when started (pg_ctl -D %s start)\n",
				p.ID, p.Files, humanBytes(p.Bytes), p.Into, to, p.Into)
		case "files":
			fmt.Fprintf(e.stdout, "  files %s: snapshot %s of %s, %d files (%s) under %s\n", p.Name, p.ID, at, p.Files, humanBytes(p.Bytes), p.Into)
		case "globals":
			fmt.Fprintf(e.stdout, "  roles: globals %s of %s (%s): created %s; existing left as they are: %s\n",
				p.ID, at, humanBytes(p.Bytes), namesOrNone(p.Globals.Created), namesOrNone(p.Globals.Existing))
		case "dump":
			fmt.Fprintf(e.stdout, "  dump %s: dump %s of %s (%s) into database %s\n", p.Name, p.ID, at, humanBytes(p.Bytes), p.Into)
		}
	}
	for _, k := range res.Kept {
		fmt.Fprintf(e.stdout, "  kept: %s (exists in the target; not restored, --keep-settings)\n", k)
	}
	if n := len(res.Warnings); n > 0 {
		fmt.Fprintf(e.stdout, "  %d warning(s), see above\n", n)
	}
}

func namesOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
