package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/doctor"
	"github.com/pitr-dev/pitr/internal/repo"
)

func newDoctorCommand(e *env) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor [--timeout 60s]",
		Short: "Check the setup end to end: archiving, permissions, slot, identity, cluster, clock",
		Long: `Check that this server's setup works, one line per check, each failure with
its fix; exit 0 only when every check holds (skipped ones do not count).
Run it as root or as the server's user, with the settings archive_command uses.

  archive                 a tiny write, pg_switch_wal(), and the closed segment
                          must reach the repository within --timeout
  repository writable     the server's user can write the local repository and
                          spool_dir (S3: proven by the archive check)
  replication slot        with daemon_stream: stream_slot exists, has lost no WAL
                          and is not behind max_slot_wal_keep_size
  max_slot_wal_keep_size  with daemon_stream: set, so a stopped receiver cannot
                          fill pg_wal
  identity                age_identity_file is set, readable by the server's
                          user, and opens what is sealed to age_recipients
  repository cluster      the marker is readable and the repository is bound to
                          this cluster's system identifier
  clock                   S3 only: local time within 5 minutes of the store's

It writes nothing to the repository but the WAL segment the switch closes.
pg_dsn must reach the primary as a superuser.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runDoctor(c.Context(), e, timeout) },
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long the archive check waits for the segment")
	return cmd
}

func runDoctor(ctx context.Context, e *env, timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("%w: --timeout must be positive", errUsage)
	}
	codec, err := e.Codec(false)
	if err != nil {
		return err
	}
	opts := doctor.Options{
		RepoURL: e.cfg.Repo, DSN: e.cfg.PGDSN.Reveal(), SpoolDir: e.cfg.SpoolDir,
		Streaming: e.cfg.DaemonStream != nil && *e.cfg.DaemonStream, Slot: e.cfg.StreamSlot,
		Encrypted: codec.Encrypt, Recipients: codec.Recipients, IdentityFile: e.cfg.AgeIdentityFile,
		ArchiveTimeout: timeout,
	}
	if dir, ok := strings.CutPrefix(e.cfg.Repo, "file://"); ok {
		opts.LocalDir = dir
	} else {
		region := cmp.Or(e.cfg.S3Region, os.Getenv("AWS_REGION"), "us-east-1")
		opts.ClockURL = cmp.Or(e.cfg.S3Endpoint, "https://s3."+region+".amazonaws.com")
	}
	// The store only: the marker is a check of its own, and a repository
	// the first wal-push has not created yet still gets the archive check.
	if st, err := e.open(ctx, false); err != nil {
		opts.OpenErr = err
	} else {
		opts.Repo = repo.New(st, codec)
	}
	results := doctor.Run(ctx, opts, func(r doctor.Result) {
		line := fmt.Sprintf("%-4s %s: %s", r.Status, r.Check, r.Detail)
		if r.Fix != "" {
			line += "; fix: " + r.Fix
		}
		fmt.Fprintln(e.stdout, line)
	})
	if n := doctor.Failed(results); n > 0 {
		return fmt.Errorf("doctor: %d of %d checks failed", n, len(results))
	}
	return nil
}
