package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/daemon"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/restore"
	"github.com/pitr-dev/pitr/internal/verify"
)

// The restore drill: pitr verify --restore-drill. cmd_verify.go declares
// the verify command with --files and --json and calls addDrillFlags and,
// with --restore-drill (or --to), runDrill.

// drillFlags are the flags of pitr verify --restore-drill.
type drillFlags struct {
	to, timeline string
	checks       []string       // DB:SQL
	cmd          *cobra.Command // reads --files and --json, which cmd_verify.go declares
}

// drillHelp is what the drill does, for the verify command's help.
const drillHelp = `--restore-drill restores the newest backup (or --to TARGET) into a scratch
directory, starts PostgreSQL on it with archive_mode = off on a free port of
127.0.0.1 and a private socket, waits for recovery, runs pg_verifybackup,
pg_amcheck on every database and the SQL checks (drill.checks and --check),
and, with file sets (files:, or --files for every set in the repository),
restores the newest snapshot of each and compares its files and bytes. It
prints the time to restore (RTO) and the point reached, saves a drill report
in the repository, removes everything, and exits 1 on any failure.`

// addDrillFlags declares --restore-drill and its flags on the verify
// command, and adds what the drill does to its help.
func addDrillFlags(cmd *cobra.Command, f *drillFlags) {
	fl := cmd.Flags()
	fl.Bool("restore-drill", false, "restore the newest backup (or --to TARGET) into a scratch directory and check it (see above)")
	fl.StringVar(&f.to, "to", "", "with --restore-drill: recovery target, as for pitr restore --to: "+restore.TargetUsage+" (default latest)")
	fl.StringVar(&f.timeline, "timeline", "latest", "with --restore-drill: timeline to recover along: "+restore.TimelineUsage)
	fl.StringArrayVar(&f.checks, "check", nil, "with --restore-drill: DB:SQL, a check on the restored copy besides drill.checks (repeatable): the first value must be a number of at least 1, or not a number")
	f.cmd = cmd
	cmd.Long += "\n\n" + drillHelp
}

// runDrill runs the restore drill.
func runDrill(ctx context.Context, e *env, f drillFlags) error {
	opts, err := drillOptions(ctx, e, f)
	if err != nil {
		return err
	}
	res, err := verify.Drill(ctx, opts)
	if res == nil {
		return err
	}
	if f.boolFlag("json") {
		if jerr := writeJSON(e.stdout, res.Report(opts.Tool)); jerr != nil {
			return jerr
		}
		return err
	}
	printDrill(e.stdout, res)
	return err
}

// printDrill prints the summary line, then one line per problem.
func printDrill(w io.Writer, res *verify.DrillResult) {
	fmt.Fprintln(w, res.Summary())
	for _, p := range res.Problems {
		fmt.Fprintln(w, "  "+p)
	}
	if res.OK() {
		fmt.Fprintf(w, "total %.1f s with checks; timeline %d, LSN %s\n", res.Total.Seconds(), res.Timeline, res.ReachedLSN)
	}
}

func (f drillFlags) boolFlag(name string) bool {
	if f.cmd == nil || f.cmd.Flags().Lookup(name) == nil {
		return false
	}
	v, _ := f.cmd.Flags().GetBool(name)
	return v
}

// drillOptions turns the settings and flags into the drill's options; the
// daemon's drills use it with zero flags.
func drillOptions(ctx context.Context, e *env, f drillFlags) (verify.DrillOptions, error) {
	var o verify.DrillOptions
	to := f.to
	if to == "" {
		to = "latest"
	}
	target, err := restore.ParseTarget(to)
	if err != nil {
		return o, fmt.Errorf("%w: --to: %v", errUsage, err)
	}
	timeline, err := restore.ParseTimeline(f.timeline)
	if err != nil {
		return o, fmt.Errorf("%w: --timeline: %v", errUsage, err)
	}
	var checks []verify.DrillCheck
	if d := e.cfg.Drill; d != nil {
		for _, c := range d.Checks {
			checks = append(checks, verify.DrillCheck{DB: c.DB, SQL: c.SQL, Min: int64(c.Min)})
		}
		o.Dir, o.User = d.Dir, d.User
	}
	for _, c := range f.checks {
		db, sql, ok := strings.Cut(c, ":")
		if db, sql = strings.TrimSpace(db), strings.TrimSpace(sql); !ok || db == "" || sql == "" {
			return o, fmt.Errorf("%w: --check %q: want DB:SQL, e.g. 'app:SELECT count(*) FROM users'", errUsage, c)
		}
		checks = append(checks, verify.DrillCheck{DB: db, SQL: sql, Min: 1})
	}
	src, err := e.openRestoreSource(ctx, "a restore drill needs")
	if err != nil {
		return o, err
	}
	sets, err := drillFileSets(ctx, e, src.repo, f.boolFlag("files"))
	if err != nil {
		return o, err
	}
	r, self, cmd, reads := src.repo, src.self, src.command, src.reads
	o.Repo, o.Target, o.Timeline, o.Checks, o.FileSets = r, target, timeline, checks, sets
	o.RestoreCommand, o.CommandReads, o.CommandExecs = cmd, reads, []string{self}
	o.Tool = "pitr " + version
	if !f.boolFlag("json") && f.cmd != nil { // a command on a terminal; not the daemon
		o.Progress = func(label string) progress.Meter { return newMeter(e, label, 0) }
	}
	return o, nil
}

// drillFileSets are the file sets a drill restores: those of files:, or
// with all every set the repository holds snapshots of.
func drillFileSets(ctx context.Context, e *env, r *repo.Repo, all bool) ([]string, error) {
	var sets []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			sets = append(sets, s)
		}
	}
	for _, s := range e.cfg.Files {
		add(s.Name)
	}
	if all {
		snaps, _, err := r.ListSnapshots(ctx, "")
		if err != nil {
			return nil, err
		}
		for _, s := range snaps {
			add(s.Set)
		}
	}
	return sets, nil
}

// drillJob is the daemon's drill on drill.schedule, or nil when none is
// scheduled or the identity, which a drill needs, is not configured (a
// warning says so). e's storage is the daemon's.
func drillJob(ctx context.Context, e *env) (*daemon.Job, error) {
	d := e.cfg.Drill
	if d == nil || d.Schedule == "" {
		return nil, nil
	}
	s, err := config.ParseSchedule(d.Schedule)
	if err != nil {
		return nil, fmt.Errorf("%w: drill.schedule: %v", errUsage, err)
	}
	if e.cfg.Encryption != "none" && e.cfg.AgeIdentityFile == "" {
		e.log.Warn().Msg("drill.schedule is set, but restore drills need the age identity and age_identity_file is not set: no drills scheduled")
		return nil, nil
	}
	opts, err := drillOptions(ctx, e, drillFlags{})
	if err != nil {
		return nil, err
	}
	var prev daemon.DrillPrevious
	if rep, err := opts.Repo.LatestReport(ctx, catalog.ReportDrill); err != nil {
		e.log.Warn().Err(err).Msg("could not read the newest drill report")
	} else if rep != nil && rep.OK {
		prev = daemon.DrillPrevious{End: rep.Finished, RTO: time.Duration(rep.RTOSeconds * float64(time.Second))}
	}
	j := daemon.DrillJob(s, prev, func(ctx context.Context) (time.Duration, error) {
		var rto time.Duration
		err := withJobMemory(func() error {
			res, err := verify.Drill(ctx, opts)
			if err == nil {
				rto = res.RTO
			}
			return err
		})
		return rto, err
	})
	return &j, nil
}
