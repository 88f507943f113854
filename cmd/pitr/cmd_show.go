package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
)

func newShowCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "show BACKUP_ID",
		Short: "Print every recorded detail of one backup (its backup.json)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  func(c *cobra.Command, args []string) error { return runShow(c.Context(), e, args[0]) },
	}
}

func runShow(ctx context.Context, e *env, id string) error {
	if !catalog.ValidBackupID(id) {
		return fmt.Errorf("%w: %q is not a backup id (see 'pitr list')", errUsage, id)
	}
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	b, err := r.Backup(ctx, id)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(catalog.MarshalBackup(b))
	return err
}
