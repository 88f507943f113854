package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/backup"
	"github.com/pitr-dev/pitr/internal/progress"
)

func newBackupCommand(e *env) *cobra.Command {
	var spread bool
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take a base backup into the repository",
		Long: `Take a base backup and stream each tablespace through zstd and age into the
repository, with no local copy. On the database host pitr reads the data
directory itself between pg_backup_start and pg_backup_stop; elsewhere the
server sends it with BASE_BACKUP (backup_method: auto, direct or stream). Both
store the same parts and backup_manifest. The backup is listed only once all
its parts and the WAL from its start to its end are stored (archive_command
must be 'pitr wal-push %p'). Connection: pg_dsn, or PGHOST/PGPORT/PGUSER/PGPASSWORD.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runBackup(c.Context(), e, !spread) },
	}
	cmd.Flags().BoolVar(&spread, "spread-checkpoint", false, "spread the starting checkpoint over checkpoint_timeout instead of checkpointing at once")
	return cmd
}

func runBackup(ctx context.Context, e *env, fast bool) error {
	r, err := e.WritableRepo(ctx)
	if err != nil {
		return err
	}
	bar := newMeter(e, "backup", 0) // the server's estimate comes with the first bytes
	b, err := backup.Run(ctx, backup.Options{
		Repo: r, DSN: e.cfg.PGDSN.Reveal(), Fast: fast,
		WALTimeout: e.cfg.BackupWALTimeout, StaleAfter: e.cfg.BackupStaleAfter, PitrVersion: version,
		Progress: bar, Method: e.cfg.BackupMethod,
	})
	progress.Done(bar)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup %s complete: %s to %s, %s stored (%s before compression)\n",
		b.ID, b.StartLSN, b.EndLSN, humanBytes(b.Stored), humanBytes(b.Bytes))
	return nil
}
