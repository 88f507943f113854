package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/files"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/restore"
)

// addFilesReadCommands adds the commands that read file snapshots (list,
// show, restore) to the files command.
func addFilesReadCommands(cmd *cobra.Command, e *env) {
	cmd.AddCommand(newFilesListCommand(e), newFilesShowCommand(e), newFilesRestoreCommand(e))
}

func newFilesListCommand(e *env) *cobra.Command {
	var set string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--set NAME] [--json]",
		Short: "List file snapshots, oldest first",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return runFilesList(c.Context(), e, set, asJSON) },
	}
	cmd.Flags().StringVar(&set, "set", "", "only this file set's snapshots")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

func checkSetFlag(set string, required bool) error {
	if set == "" && required {
		return fmt.Errorf("%w: --set NAME is required", errUsage)
	}
	if set != "" && !catalog.ValidSetName(set) {
		return fmt.Errorf("%w: --set %q: want lower-case letters, digits, _ and -", errUsage, set)
	}
	return nil
}

func runFilesList(ctx context.Context, e *env, set string, asJSON bool) error {
	if err := checkSetFlag(set, false); err != nil {
		return err
	}
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	snaps, damaged, err := r.ListSnapshots(ctx, set)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, struct {
			Snapshots []*catalog.Snapshot    `json:"snapshots"`
			Damaged   []repo.DamagedSnapshot `json:"damaged_snapshots"`
		}{snaps, damaged})
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SET\tSNAPSHOT\tSTARTED\tDURATION\tFILES\tSIZE\tNEW\tSTORED\tCHANGED")
	for _, s := range snaps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\n", s.Set, s.ID, s.StartTime.UTC().Format(time.RFC3339),
			s.EndTime.Sub(s.StartTime).Round(time.Second), s.Files, humanBytes(s.Bytes), humanBytes(s.NewBytes), humanBytes(s.Stored), s.Changed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range damaged {
		fmt.Fprintf(e.stdout, "damaged: %s of %s (%s; skipped, not restorable)\n", d.ID, d.Set, d.Reason)
	}
	return nil
}

func newFilesShowCommand(e *env) *cobra.Command {
	var set string
	cmd := &cobra.Command{
		Use:   "show SNAPSHOT [--set NAME]",
		Short: "Print every recorded detail of one file snapshot (its snapshot.json)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  func(c *cobra.Command, args []string) error { return runFilesShow(c.Context(), e, set, args[0]) },
	}
	cmd.Flags().StringVar(&set, "set", "", "the file set (needed for latest, or when two sets have a snapshot of that id)")
	return cmd
}

func runFilesShow(ctx context.Context, e *env, set, id string) error {
	if err := checkSetFlag(set, id == "latest"); err != nil {
		return err
	}
	if id != "latest" && !catalog.ValidBackupID(id) {
		return fmt.Errorf("%w: %q is not a snapshot id (see 'pitr files list')", errUsage, id)
	}
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	if set == "" {
		if set, err = setOfSnapshot(ctx, r, id); err != nil {
			return err
		}
	}
	s, err := r.Snapshot(ctx, set, id)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(catalog.MarshalSnapshot(s))
	return err
}

// setOfSnapshot finds the one set holding a snapshot id.
func setOfSnapshot(ctx context.Context, r *repo.Repo, id string) (string, error) {
	snaps, damaged, err := r.ListSnapshots(ctx, "")
	if err != nil {
		return "", err
	}
	var sets []string
	for _, s := range snaps {
		if s.ID == id {
			sets = append(sets, s.Set)
		}
	}
	for _, d := range damaged {
		if d.ID == id {
			sets = append(sets, d.Set)
		}
	}
	switch len(sets) {
	case 0:
		return "", fmt.Errorf("no file snapshot %s in the repository (see 'pitr files list')", id)
	case 1:
		return sets[0], nil
	}
	return "", fmt.Errorf("%w: snapshot %s exists in file sets %s: pass --set", errUsage, id, strings.Join(sets, ", "))
}

// filesRestoreFlags are the flags of files restore.
type filesRestoreFlags struct {
	set, snapshot, at, target string
	include                   []string
	force                     bool
}

func newFilesRestoreCommand(e *env) *cobra.Command {
	var f filesRestoreFlags
	cmd := &cobra.Command{
		Use:   "restore --set NAME [--snapshot ID|latest] [--at TIME] --target DIR [--include PATTERN]... [--force]",
		Short: "Restore a file snapshot under a directory",
		Long: `Restore a snapshot of a file set under DIR: each path P of the snapshot goes to
DIR/P (/srv/app/.env is restored as DIR/srv/app/.env; use --target / to put
files back where they were). Modes, owners (when run as root), mtimes,
symbolic links, hard links, empty directories and extended attributes come
back as recorded. Each file is written under a temporary name, checked
against its recorded SHA-256 sums, fsynced and renamed into place.

The snapshot is --snapshot ID, the newest one (latest, the default), or with
--at the newest one started at or before TIME (RFC 3339 or
"2026-11-22 14:01:00[+TZ]", UTC when the zone is absent, as restore --to).
Restore refuses to start if any path it would write exists under DIR,
unless --force (then files and symbolic links there are replaced, never
followed). --include PATTERN (path.Match syntax, on the snapshot's absolute
paths, e.g. '/srv/app/public/system/*'; repeatable) restores only matching
paths, everything under a matching directory, and the directories above.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runFilesRestore(c.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.set, "set", "", "the file set to restore")
	fl.StringVar(&f.snapshot, "snapshot", "", "snapshot id, or latest (the default)")
	fl.StringVar(&f.at, "at", "", "restore the newest snapshot started at or before this time")
	fl.StringVar(&f.target, "target", "", "directory to restore under (created if absent)")
	fl.StringArrayVar(&f.include, "include", nil, "restore only paths matching this pattern (repeatable)")
	fl.BoolVar(&f.force, "force", false, "replace existing files at the target")
	return cmd
}

func runFilesRestore(ctx context.Context, e *env, f filesRestoreFlags) error {
	if err := checkSetFlag(f.set, true); err != nil {
		return err
	}
	if f.target == "" {
		return fmt.Errorf("%w: files restore needs --target DIR", errUsage)
	}
	if f.snapshot != "" && f.at != "" {
		return fmt.Errorf("%w: --snapshot and --at exclude each other", errUsage)
	}
	if f.snapshot != "" && f.snapshot != "latest" && !catalog.ValidBackupID(f.snapshot) {
		return fmt.Errorf("%w: --snapshot %q is not a snapshot id (see 'pitr files list')", errUsage, f.snapshot)
	}
	var at time.Time
	if f.at != "" {
		t, err := restore.ParseTarget(f.at)
		if err != nil || t.Kind != restore.Time {
			return fmt.Errorf("%w: --at %q: want a time, RFC 3339 or \"2026-11-22 14:01:00[+TZ]\" (UTC when the zone is absent)", errUsage, f.at)
		}
		at = t.Time
	}
	if err := files.CheckPatterns(f.include); err != nil {
		return fmt.Errorf("%w: --include: %v", errUsage, err)
	}
	r, err := e.Repo(ctx, true)
	if err != nil {
		return err
	}
	s, err := files.FindSnapshot(ctx, r, f.set, f.snapshot, at)
	if err != nil {
		return err
	}
	if codec := r.Codec(); s.Encrypted && len(codec.Identities) == 0 {
		return fmt.Errorf("%w: snapshot %s of %s is encrypted: restoring needs the age identity file: set age_identity_file or PITR_AGE_IDENTITY_FILE", errUsage, s.ID, s.Set)
	}
	bar := newMeter(e, "files restore", 0) // the job knows the bytes to write
	st, err := files.Restore(ctx, r, files.RestoreOptions{Snapshot: s, Target: f.target, Include: f.include, Force: f.force, Progress: bar})
	progress.Done(bar)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored snapshot %s of %s into %s: %d files (%s), %d directories, %d symlinks, %d hard links in %.1fs\n",
		s.ID, s.Set, f.target, st.Files, humanBytes(st.Bytes), st.Dirs, st.Symlinks, st.Hardlinks, st.Duration.Seconds())
	if st.Replaced > 0 {
		fmt.Fprintf(e.stdout, "replaced %d existing paths (--force)\n", st.Replaced)
	}
	if st.OwnersNotRestored > 0 {
		why := "the system refused"
		if os.Geteuid() != 0 {
			why = "not running as root"
		}
		fmt.Fprintf(e.stdout, "owners not restored for %d paths (%s)\n", st.OwnersNotRestored, why)
	}
	if st.XattrsNotRestored > 0 {
		fmt.Fprintf(e.stdout, "%d extended attributes not restored: the target file system refused them\n", st.XattrsNotRestored)
	}
	return nil
}
