package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/restore"
)

type restoreFlags struct {
	to, pgdata, backupID string
	force, start         bool
	port                 int
	tablespaceMap        []string
}

func newRestoreCommand(e *env) *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore --to TARGET --pgdata DIR",
		Short: "Restore a base backup and configure recovery to a target",
		Long: `Restore the newest complete backup that ended before TARGET into DIR, and write
recovery.signal and the recovery settings (restore_command calling this pitr,
the target, recovery_target_action = promote, recovery_target_timeline = latest).

TARGET is one of: latest (end of the archived WAL); immediate (the backup's
consistency point); a time, RFC 3339 (2026-11-22T14:01:00Z) or PostgreSQL's
'2026-11-22 14:01:00+00' (no zone means UTC); lsn:0/3000028; xid:1234;
name:RESTORE_POINT.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runRestore(c.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.to, "to", "", "recovery target (see above)")
	fl.StringVar(&f.pgdata, "pgdata", "", "data directory to restore into (must be empty or absent unless --force)")
	fl.StringVar(&f.backupID, "backup", "", "restore this backup instead of choosing by target")
	fl.BoolVar(&f.force, "force", false, "replace a non-empty --pgdata (and non-empty tablespace directories)")
	fl.StringArrayVar(&f.tablespaceMap, "tablespace-map", nil, "OLD=NEW: restore the tablespace at OLD into NEW (repeatable)")
	fl.BoolVar(&f.start, "start", false, "start the server as the directory's owner and wait until recovery ends")
	fl.IntVar(&f.port, "port", 0, "with --start: port for the server (default: its configuration's)")
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
	tsMap := map[string]string{}
	for _, m := range f.tablespaceMap {
		old, new, ok := strings.Cut(m, "=")
		if !ok || !filepath.IsAbs(old) || !filepath.IsAbs(new) {
			return fmt.Errorf("%w: --tablespace-map %q: want OLD=NEW with absolute paths", errUsage, m)
		}
		tsMap[filepath.Clean(old)] = filepath.Clean(new)
	}
	st, codec, err := e.Repo(ctx, true)
	if err != nil {
		return err
	}
	if codec.Encrypt && len(codec.Identities) == 0 {
		return fmt.Errorf("%w: restoring needs the age identity file: set age_identity_file or PITR_AGE_IDENTITY_FILE", errUsage)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// restore_command carries the settings wal-fetch needs, no secrets;
	// nothing of ours goes into the data directory.
	restoreCmd, reads, err := restoreCommand(self, e.cfg)
	if err != nil {
		return err
	}
	if err := restore.Preflight(ctx, restore.PreflightOptions{DataDir: f.pgdata, Read: reads, Exec: []string{self}, Start: f.start, Port: f.port}); err != nil {
		return err
	}
	res, err := restore.Run(ctx, restore.Options{
		Store: st, Codec: codec, Target: target, BackupID: f.backupID, DataDir: f.pgdata, Force: f.force,
		TablespaceMap: tsMap, RestoreCommand: restoreCmd,
	})
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
