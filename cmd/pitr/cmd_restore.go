package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/restore"
)

type restoreFlags struct {
	to, pgdata, backupID string
	force, start         bool
	port                 int
	tablespaceMap        []string
	timeline             string
	archiveMode          string
}

func newRestoreCommand(e *env) *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore --to TARGET --pgdata DIR",
		Short: "Restore a base backup and configure recovery to a target",
		Long: `Restore the newest complete backup that ended before TARGET into DIR, and write
recovery.signal and the recovery settings (restore_command calling this pitr,
the target, recovery_target_action = promote, recovery_target_timeline as
chosen with --timeline, always as a number).

TARGET is one of: latest (end of the archived WAL); immediate (the backup's
consistency point); a time, RFC 3339 (2026-11-22T14:01:00Z) or PostgreSQL's
'2026-11-22 14:01:00+00' (no zone means UTC); lsn:0/3000028; xid:1234;
name:RESTORE_POINT.

--timeline chooses the history recovery follows when the archive holds more
than one (a failover, or a restored copy that archived into this repository):
latest (default) is the timeline, reachable from a backup, whose archived WAL
ends last; current is the backup's own; N is that timeline. The backup is the
newest one that reaches it. pitr prints its choice and the alternatives.

--archive-mode off writes archive_mode = off, so the copy does not archive
(rehearsals, drills); keep leaves the backup's archive settings, so once
started the copy archives its new timeline into the repository it came from
(it becomes production). --start requires one of them (or a yes on a terminal).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runRestore(c.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.to, "to", "", "recovery target (see above)")
	fl.StringVar(&f.pgdata, "pgdata", "", "data directory to restore into (must be empty or absent unless --force)")
	fl.StringVar(&f.backupID, "backup", "", "restore this backup instead of choosing by target")
	fl.BoolVar(&f.force, "force", false, "replace a stopped cluster: a --pgdata that is a PostgreSQL data directory, tablespace directories holding only PG_* (never a running server's, never other files)")
	fl.StringArrayVar(&f.tablespaceMap, "tablespace-map", nil, "OLD=NEW: restore the tablespace at OLD into NEW (repeatable)")
	fl.BoolVar(&f.start, "start", false, "start the server as the directory's owner and wait until recovery ends")
	fl.IntVar(&f.port, "port", 0, "with --start: port for the server (default: its configuration's)")
	fl.StringVar(&f.timeline, "timeline", "latest", "timeline to recover along: "+restore.TimelineUsage)
	fl.StringVar(&f.archiveMode, "archive-mode", "", "off: the restored copy does not archive (rehearsals, drills); keep: it keeps the backup's archive settings and archives into the repository when started (it becomes production); required with --start")
	return cmd
}

func runRestore(ctx context.Context, e *env, f restoreFlags) error {
	if f.to == "" || f.pgdata == "" {
		return fmt.Errorf("%w: restore needs --to TARGET and --pgdata DIR", errUsage)
	}
	target, err := restore.ParseTarget(f.to)
	if err != nil {
		return fmt.Errorf("%w: --to: %v", errUsage, err)
	}
	timeline, err := restore.ParseTimeline(f.timeline)
	if err != nil {
		return fmt.Errorf("%w: --timeline: %v", errUsage, err)
	}
	archiveOff, err := chooseArchiveMode(e, f.archiveMode, f.start)
	if err != nil {
		return err
	}
	tsMap := map[string]string{}
	for _, m := range f.tablespaceMap {
		old, new, ok := strings.Cut(m, "=")
		if !ok || !filepath.IsAbs(old) || !filepath.IsAbs(new) {
			return fmt.Errorf("%w: --tablespace-map %q: want OLD=NEW with absolute paths", errUsage, m)
		}
		tsMap[filepath.Clean(old)] = filepath.Clean(new)
	}
	src, err := e.openRestoreSource(ctx, "restoring needs")
	if err != nil {
		return err
	}
	r, self, restoreCmd, reads := src.repo, src.self, src.command, src.reads
	if err := restore.Preflight(ctx, restore.PreflightOptions{DataDir: f.pgdata, Read: reads, Exec: []string{self}, Start: f.start, Port: f.port}); err != nil {
		return err
	}
	bar := newMeter(e, "restore", 0) // the job knows the backup's size
	res, err := restore.Run(ctx, restore.Options{
		Repo: r, Target: target, BackupID: f.backupID, DataDir: f.pgdata, Force: f.force,
		TablespaceMap: tsMap, RestoreCommand: restoreCmd,
		Timeline: timeline, ArchiveOff: archiveOff, Out: e.stdout, Progress: bar,
	})
	progress.Done(bar)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored backup %s (%d files, %s) into %s; recovery to %s configured\n",
		res.Plan.Backup.ID, res.Files, humanBytes(res.Bytes), f.pgdata, target)
	if !f.start {
		fmt.Fprintf(e.stdout, "start the server to recover, e.g.: pg_ctl -D %s start\n", f.pgdata)
		return nil
	}
	reached, err := restore.Start(ctx, restore.StartOptions{DataDir: f.pgdata, Port: f.port, Timeout: 24 * time.Hour, Env: os.Environ()})
	if err != nil {
		return err
	}
	at := "unknown time"
	if !reached.Time.IsZero() {
		at = reached.Time.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(e.stdout, "recovery ended: last transaction at %s, LSN %s, now on timeline %d (server log: %s)\n",
		at, reached.LSN, reached.Timeline, reached.Log)
	return nil
}

// shellQuote quotes a path for the shell PostgreSQL runs restore_command in.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Answers of chooseArchiveMode.
const (
	archiveOffLine  = "archive_mode = off (--archive-mode off): the restored copy will not archive WAL into any repository"
	archiveKeepLine = "archive settings kept from the backup (--archive-mode keep): once started, the copy archives its new timeline into the repository it was restored from, as production does"
	archiveAskLine  = "archive settings kept from the backup (no --archive-mode, no --start): when started, the copy will archive into the repository it was restored from; use --archive-mode off for a rehearsal"
)

// errArchiveMode refuses restore --start when nobody said whether the copy
// may archive into the repository.
var errArchiveMode = fmt.Errorf("%w: restore --start needs --archive-mode: pass --archive-mode off for a rehearsal, or --archive-mode keep if this copy becomes production (it will archive into the repository it was restored from)", errUsage)

// chooseArchiveMode decides whether the restored copy gets archive_mode =
// off, and says which and why. A copy started beside production with the
// backup's archive_command archives its own timeline into production's
// repository; with --start, that needs --archive-mode or a yes on a
// terminal. It runs before anything is written.
func chooseArchiveMode(e *env, mode string, start bool) (off bool, err error) {
	switch mode {
	case "off":
		fmt.Fprintln(e.stdout, archiveOffLine)
		return true, nil
	case "keep":
		fmt.Fprintln(e.stdout, archiveKeepLine)
		return false, nil
	case "":
	default:
		return false, fmt.Errorf("%w: --archive-mode %q: want off or keep", errUsage, mode)
	}
	if !start {
		fmt.Fprintln(e.stdout, archiveAskLine)
		return false, nil
	}
	if !interactive(e.stdin) {
		return false, errArchiveMode
	}
	fmt.Fprint(e.stderr, "The restored server will start with the backup's archive settings and archive into the repository it was restored from.\nOnly answer yes if this copy becomes production (for a rehearsal, answer no and pass --archive-mode off). Start it that way? [y/N] ")
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		fmt.Fprintln(e.stdout, "archive settings kept from the backup (answered yes): once started, the copy archives its new timeline into the repository it was restored from")
		return false, nil
	}
	return false, errors.New("restore not started: answered no; pass --archive-mode off for a rehearsal, or --archive-mode keep if this copy becomes production")
}

// interactive reports whether r is a terminal a person can answer on (a
// reader with an IsTerminal method decides for itself, as in tests).
func interactive(r io.Reader) bool {
	switch r := r.(type) {
	case interface{ IsTerminal() bool }:
		return r.IsTerminal()
	case *os.File:
		return isatty.IsTerminal(r.Fd()) || isatty.IsCygwinTerminal(r.Fd())
	}
	return false
}
