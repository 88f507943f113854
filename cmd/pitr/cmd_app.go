package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/app"
	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/dump"
	"github.com/pitr-dev/pitr/internal/files"
	"github.com/pitr-dev/pitr/internal/repo"
)

func newAppCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app",
		Short: "Back up, list and show whole applications (the config's apps:): database point, dumps, file sets, versions",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	cmd.AddCommand(
		newAppBackupCommand(e),
		newAppListCommand(e),
		newAppShowCommand(e),
		newAppRestoreCommand(e),
	)
	return cmd
}

func newAppBackupCommand(e *env) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "backup NAME | --all",
		Short: "Take one consistent app point of an application of the config's apps:",
		Long: `Take one app point of the application NAME (or of each, --all): a PostgreSQL
restore point (pg_create_restore_point, then pg_switch_wal; pitr waits until
its segment is in the repository, up to backup_wal_timeout) when
database.cluster is set, then the before hooks, a snapshot of each file set,
a dump of each database of database.dumps and, with them, of the
cluster's roles and tablespaces (pg_dumpall --globals-only, as database
_globals; dump_globals: false skips it), the after hooks (always, also
after a failure), and the versions. The database point comes before the
files, so every file the restored database refers to is in the restored
files. The app point is listed (pitr app list) only when everything
succeeded; a failing hook or file set leaves none (the snapshots and dumps
already taken stay, as ordinary ones).`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error { return runAppBackup(c.Context(), e, args, all) },
	}
	cmd.Flags().BoolVar(&all, "all", false, "every application of the config")
	return cmd
}

// appsNamed picks the apps an app command line names.
func appsNamed(cfg *config.Config, verb string, args []string, all bool) ([]config.App, error) {
	names := make([]string, len(cfg.Apps))
	for i, a := range cfg.Apps {
		names[i] = a.Name
	}
	known := "none in the config"
	if len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	switch {
	case all && len(args) > 0:
		return nil, fmt.Errorf("%w: app %s --all takes no name", errUsage, verb)
	case all && len(cfg.Apps) == 0:
		return nil, fmt.Errorf("%w: app %s --all: the config has no applications (apps:)", errUsage, verb)
	case all:
		return cfg.Apps, nil
	case len(args) == 0:
		return nil, fmt.Errorf("%w: app %s: name an application (%s), or --all", errUsage, verb, known)
	}
	a := cfg.App(args[0])
	if a == nil {
		return nil, fmt.Errorf("%w: app %s: no application %q in the config (apps: %s)", errUsage, verb, args[0], known)
	}
	return []config.App{*a}, nil
}

func runAppBackup(ctx context.Context, e *env, args []string, all bool) error {
	apps, err := appsNamed(&e.cfg, "backup", args, all)
	if err != nil {
		return err
	}
	r, err := e.WritableRepo(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range apps {
		p, err := appBackup(ctx, e, r, a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		printAppPoint(e.stdout, p)
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return fmt.Errorf("%d of %d app backups failed: %s", len(errs), len(apps), strings.Join(msgs, "; "))
}

// appBackup takes one app point of a, with the jobs wired to files,
// dump and the cluster of pg_dsn (pitr app backup and the daemon).
func appBackup(ctx context.Context, e *env, r *repo.Repo, a config.App) (*catalog.App, error) {
	opts := app.Options{
		Repo: r, App: a.Name, PitrVersion: version,
		Cluster: a.Database.Cluster, DSN: e.cfg.PGDSN.Reveal(), WALTimeout: e.cfg.BackupWALTimeout,
		Sets: a.Files, Dumps: a.Database.Dumps,
		Snapshot: func(ctx context.Context, name string) (*catalog.Snapshot, error) {
			for _, set := range e.cfg.Files {
				if set.Name == name {
					snap, err := filesBackup(ctx, e, r, set, false, nil)
					if errors.Is(err, files.ErrChanged) && snap != nil { // stored, the changing files flagged
						zerolog.Ctx(ctx).Warn().Err(err).Str("set", name).Msg("files changed while read; their snapshot is stored with them flagged")
						err = nil
					}
					return snap, err
				}
			}
			return nil, fmt.Errorf("no file set %q in the config", name)
		},
		Dump: func(ctx context.Context, db string) (*catalog.Dump, error) {
			return dump.Run(ctx, dump.Options{Repo: r, DSN: e.cfg.PGDSN.Reveal(), Database: db, PitrVersion: version})
		},
	}
	if e.cfg.DumpGlobals == nil || *e.cfg.DumpGlobals {
		opts.Globals = func(ctx context.Context) (*catalog.Dump, error) {
			return dump.Globals(ctx, dump.Options{Repo: r, DSN: e.cfg.PGDSN.Reveal(), PitrVersion: version})
		}
	}
	for _, h := range a.Hooks.Before {
		opts.Before = append(opts.Before, app.Hook{Name: h.Name, Command: h.Command, Timeout: h.Timeout})
	}
	for _, h := range a.Hooks.After {
		opts.After = append(opts.After, app.Hook{Name: h.Name, Command: h.Command, Timeout: h.Timeout})
	}
	names := make([]string, 0, len(a.Versions))
	for n := range a.Versions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		opts.Versions = append(opts.Versions, app.Version{Name: n, Command: a.Versions[n]})
	}
	return app.Backup(ctx, opts)
}

func printAppPoint(w io.Writer, p *catalog.App) {
	fmt.Fprintf(w, "app point %s/%s complete: ", p.App, p.ID)
	if rp := p.RestorePoint; rp != nil {
		fmt.Fprintf(w, "restore point %s at %s (%s), ", rp.Name, rp.LSN, rp.Time.Format(time.RFC3339))
	}
	dbs, globals := app.SplitGlobals(p.Dumps)
	fmt.Fprintf(w, "%d file snapshots, %d dumps", len(p.Snapshots), len(dbs))
	if globals != nil {
		fmt.Fprint(w, " and the roles (globals)")
	}
	fmt.Fprintln(w)
}

func newAppListCommand(e *env) *cobra.Command {
	var name string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--app NAME] [--json]",
		Short: "List app points by application, oldest first",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return runAppList(c.Context(), e, name, asJSON) },
	}
	cmd.Flags().StringVar(&name, "app", "", "only this application's points")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

func runAppList(ctx context.Context, e *env, name string, asJSON bool) error {
	if name != "" && !catalog.ValidSetName(name) {
		return fmt.Errorf("%w: app list --app %q: want lower-case letters, digits, _ and -", errUsage, name)
	}
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	points, damaged, err := r.ListApps(ctx, name)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, struct {
			Apps    []*catalog.App    `json:"apps"`
			Damaged []repo.DamagedApp `json:"damaged_apps"`
		}{points, damaged})
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tID\tSTARTED\tDURATION\tRESTORE POINT\tSNAPSHOTS\tDUMPS\tSIZE")
	for _, p := range points {
		rp := "-"
		if p.RestorePoint != nil {
			rp = p.RestorePoint.LSN + " " + p.RestorePoint.Time.Format(time.RFC3339)
		}
		var size int64
		for _, s := range p.Snapshots {
			size += s.Bytes
		}
		for _, d := range p.Dumps {
			size += d.Bytes
		}
		dbs, _ := app.SplitGlobals(p.Dumps) // the globals are in SIZE, not counted as a database
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.App, p.ID, p.StartTime.Format(time.RFC3339),
			p.EndTime.Sub(p.StartTime).Round(time.Second), rp, len(p.Snapshots), len(dbs), humanBytes(size))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range damaged {
		fmt.Fprintf(e.stdout, "damaged: %s/%s (%s; skipped)\n", d.App, d.ID, d.Reason)
	}
	return nil
}

func newAppShowCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID | APP/ID | APP [--json]",
		Short: "Show an app point: its restore point, snapshots, dumps, versions and hooks (no identity needed)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  func(c *cobra.Command, args []string) error { return runAppShow(c.Context(), e, args[0], asJSON) },
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the entry as JSON")
	return cmd
}

func runAppShow(ctx context.Context, e *env, ref string, asJSON bool) error {
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	p, err := app.Find(ctx, r, ref)
	if errors.Is(err, app.ErrAmbiguous) {
		return fmt.Errorf("%w: app show: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, p)
	}
	w := e.stdout
	fmt.Fprintf(w, "app point %s/%s\n", p.App, p.ID)
	fmt.Fprintf(w, "  started %s, ended %s, on %s by pitr %s\n", p.StartTime.Format(time.RFC3339), p.EndTime.Format(time.RFC3339), p.Host, p.PitrVersion)
	if rp := p.RestorePoint; rp != nil {
		fmt.Fprintf(w, "restore point %s\n  lsn %s at %s, timeline %d, segment %s\n  system identifier %s, PostgreSQL %d\n",
			rp.Name, rp.LSN, rp.Time.Format(time.RFC3339Nano), rp.Timeline, rp.WALSegment, rp.SystemID, rp.PGVersion)
	} else {
		fmt.Fprintln(w, "restore point: none (the app has no cluster)")
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if len(p.Snapshots) > 0 {
		fmt.Fprintln(tw, "snapshots:")
		for _, s := range p.Snapshots {
			fmt.Fprintf(tw, "  %s\t%s\t%d files\t%s\n", s.Set, s.ID, s.Files, humanBytes(s.Bytes))
		}
	}
	if len(p.Dumps) > 0 {
		fmt.Fprintln(tw, "dumps:")
		dbs, globals := app.SplitGlobals(p.Dumps)
		for _, d := range dbs {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Database, d.ID, humanBytes(d.Bytes))
		}
		if globals != nil {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t(roles and tablespaces, applied first by app restore --dumps)\n", globals.Database, globals.ID, humanBytes(globals.Bytes))
		} else if len(dbs) > 0 {
			fmt.Fprintln(tw, "  no roles stored (dump_globals: false, or an older pitr): restore the dumps where their owners exist")
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.Versions) > 0 {
		fmt.Fprintln(w, "versions:")
		names := make([]string, 0, len(p.Versions))
		for n := range p.Versions {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %s: %s\n", n, strings.ReplaceAll(p.Versions[n], "\n", "\n    "))
		}
	}
	if len(p.Hooks) > 0 {
		fmt.Fprintln(w, "hooks:")
		for _, h := range p.Hooks {
			fmt.Fprintf(w, "  %s %s: exit %d, %.1fs\n", h.When, h.Name, h.ExitCode, h.Seconds)
		}
	}
	return nil
}
