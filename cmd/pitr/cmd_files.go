package main

import (
	"github.com/spf13/cobra"
)

// newFilesCommand is the parent of the file-snapshot commands: backup
// (cmd_files_backup.go) and the read side, list, show and restore
// (cmd_files_read.go).
func newFilesCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "files",
		Short: "Snapshots of the application's files: uploads and secrets (file sets of the config's files:)",
		Long: `Take, list and restore snapshots of file sets: the application's uploads and
its secrets, as the config's files: lists them. Content is cut into chunks
that are deduplicated across snapshots, sets and hosts sharing the
repository, compressed with zstd, encrypted with age and packed into objects
of about 16 MiB; a snapshot's manifest (every path with its type, mode,
owner, mtime, link target and xattrs) is stored encrypted too.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	cmd.AddCommand(newFilesBackupCommand(e))
	addFilesReadCommands(cmd, e)
	return cmd
}
