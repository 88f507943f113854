package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/wal"
)

func newWALPushCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "wal-push PATH",
		Short: "Archive one WAL file (archive_command = 'pitr wal-push %p')",
		Long: `Archive one WAL file. Exits 0 only once the file is durably stored and the
store confirmed its checksum. Looks ahead at other .ready files and uploads
them in parallel (push_concurrency), so later calls return at once.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error { return runWALPush(c.Context(), e, args[0]) },
	}
}

func runWALPush(ctx context.Context, e *env, path string) error {
	if _, err := wal.ParseName(baseName(path)); err != nil {
		return fmt.Errorf("%w: wal-push: %v", errUsage, err)
	}
	st, codec, err := e.WritableRepo(ctx)
	if err != nil {
		return err
	}
	_, err = wal.Push(ctx, path, wal.PushOptions{
		Store: st, Codec: codec, SpoolDir: e.cfg.SpoolDir, Concurrency: e.cfg.PushConcurrency,
		RepoID: e.cfg.Repo, Version: version,
	})
	return err
}
