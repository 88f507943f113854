package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"
)

// This file is a stub for the restore drill (issue 11 item 3), which
// replaces it wholesale. cmd_verify.go uses only drillFlags, addDrillFlags
// and runDrill, and reads the bool flag "restore-drill" by name (declared
// here) to decide whether to call runDrill instead of the object checks.
// cmd_verify.go itself declares --backup, --wal, --dumps, --files, --full,
// --read-data-subset and --json: addDrillFlags must not declare those
// again (cobra panics on a duplicate); runDrill can read them from the
// command if it needs them.

// drillFlags are the flags of pitr verify --restore-drill.
type drillFlags struct{ to string }

// addDrillFlags declares --restore-drill and --to on the verify command.
func addDrillFlags(cmd *cobra.Command, f *drillFlags) {
	cmd.Flags().Bool("restore-drill", false, "restore the newest backup (or --to TARGET) into a scratch directory and check it")
	cmd.Flags().StringVar(&f.to, "to", "", "drill target, as for pitr restore --to")
}

// runDrill runs the restore drill.
func runDrill(ctx context.Context, e *env, f drillFlags) error {
	return errors.New("restore drill: not yet implemented")
}
