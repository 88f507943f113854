package main

import "github.com/spf13/cobra"

// addFilesReadCommands adds the read side of pitr files (list, show,
// restore) to cmd. A stub here: the read side's own change replaces this
// file.
func addFilesReadCommands(cmd *cobra.Command, e *env) {}
