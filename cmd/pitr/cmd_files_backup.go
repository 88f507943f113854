package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/files"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
)

// exitChanged is pitr files backup's status when files kept changing
// while they were read: the snapshot is stored, with those files as last
// read and flagged, but they may be torn.
const exitChanged = 3

// filesAfterRead is files.Options.AfterRead, for tests.
var filesAfterRead func(path string, try int)

// defaultDedupKey is the dedup key's place without a config file.
const defaultDedupKey = "/var/lib/pitr/dedup.key"

type filesBackupOptions struct {
	all     bool
	set     string // ad hoc: --set NAME PATH...
	kind    string
	kindSet bool // --kind given
	exclude []string
	force   bool // --force-read
}

func newFilesBackupCommand(e *env) *cobra.Command {
	var o filesBackupOptions
	cmd := &cobra.Command{
		Use:   "backup SET | --all | --set NAME PATH...",
		Short: "Take a snapshot of a file set (one of the config's files:, every one, or paths named here)",
		Long: `Take a snapshot of the file set SET of the config's files:, of every set
(--all), or of PATH... as the set NAME (--set, with --kind and --exclude).
Only chunks the repository lacks are uploaded. The snapshot is listed only
once its manifest and every chunk it needs are stored: an interrupted run
leaves nothing listed, and a rerun reuses what it stored.

Chunk IDs are keyed with the dedup key (files_dedup_key, created on first use;
every host snapshotting into the repository needs the same file; restores
need only the age identity). The local index cache, rebuilt from the
repository whenever it is missing, is under spool_dir when set, else the
user's cache directory (~/.cache/pitr/). A stat cache there, per set, lets a
snapshot skip files whose size, times, inode and device are unchanged since
the last one from this host; --force-read reads every file.

Exit status: 0 when every snapshot is stored, 3 when they are stored but
some file kept changing while it was read (it is stored as last read and
flagged changed), 1 on any other error, 2 on a usage error.`,
		Args: usageArgs(cobra.ArbitraryArgs),
		RunE: func(c *cobra.Command, args []string) error {
			o.kindSet = c.Flags().Changed("kind")
			return runFilesBackup(c.Context(), e, o, args)
		},
	}
	cmd.Flags().BoolVar(&o.all, "all", false, "every file set of the config")
	cmd.Flags().StringVar(&o.set, "set", "", "take an ad hoc snapshot of PATH... as the set NAME")
	cmd.Flags().StringVar(&o.kind, "kind", files.KindUploads, "with --set: uploads or secrets")
	cmd.Flags().StringArrayVar(&o.exclude, "exclude", nil, "with --set: a glob of paths to leave out (repeatable)")
	cmd.Flags().BoolVar(&o.force, "force-read", false, "read every file, even those the local stat cache says are unchanged since the last snapshot")
	return cmd
}

// filesSets picks the sets a files backup command line names.
func filesSets(cfg *config.Config, o filesBackupOptions, args []string) ([]config.FileSet, error) {
	var names []string
	for _, s := range cfg.Files {
		names = append(names, s.Name)
	}
	known := "none in the config"
	if len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	switch {
	case o.set != "":
		if o.all {
			return nil, fmt.Errorf("%w: files backup: --set and --all exclude each other", errUsage)
		}
		if len(args) == 0 {
			return nil, fmt.Errorf("%w: files backup --set %s: name the paths to snapshot", errUsage, o.set)
		}
		if !catalog.ValidSetName(o.set) {
			return nil, fmt.Errorf("%w: files backup --set %q: want lower-case letters, digits, _ and -, starting with a letter or digit", errUsage, o.set)
		}
		if o.kind != files.KindUploads && o.kind != files.KindSecrets {
			return nil, fmt.Errorf("%w: files backup --kind %q: want %s or %s", errUsage, o.kind, files.KindUploads, files.KindSecrets)
		}
		for _, p := range args {
			if !filepath.IsAbs(p) {
				return nil, fmt.Errorf("%w: files backup --set %s: path %q is not absolute", errUsage, o.set, p)
			}
		}
		return []config.FileSet{{Name: o.set, Kind: config.FileSetKind(o.kind), Paths: args, Exclude: o.exclude}}, nil
	case o.kindSet || len(o.exclude) > 0:
		return nil, fmt.Errorf("%w: files backup: --kind and --exclude go with --set (a configured set has its own)", errUsage)
	case o.all:
		if len(args) > 0 {
			return nil, fmt.Errorf("%w: files backup --all takes no set name", errUsage)
		}
		if len(cfg.Files) == 0 {
			return nil, fmt.Errorf("%w: files backup --all: the config has no file sets (files:)", errUsage)
		}
		return cfg.Files, nil
	case len(args) == 1:
		i := slices.Index(names, args[0])
		if i < 0 {
			return nil, fmt.Errorf("%w: files backup: no file set %q in the config (sets: %s)", errUsage, args[0], known)
		}
		return cfg.Files[i : i+1], nil
	case len(args) > 1:
		return nil, fmt.Errorf("%w: files backup: one set at a time (or --all); paths go with --set NAME", errUsage)
	}
	return nil, fmt.Errorf("%w: files backup: name a set (%s), or --all, or --set NAME and its paths", errUsage, known)
}

func runFilesBackup(ctx context.Context, e *env, o filesBackupOptions, args []string) error {
	sets, err := filesSets(&e.cfg, o, args)
	if err != nil {
		return err
	}
	r, err := e.WritableRepo(ctx)
	if err != nil {
		return err
	}
	// A snapshot's live heap is mostly pack buffers and the chunk index
	// (about 100 MiB for 200,000 files): keep the heap close to it.
	tightGC()
	var errs []error
	changed := false
	for _, set := range sets {
		bar := newMeter(e, "files "+set.Name, 0) // bytes scanned; the total is not known
		snap, err := filesBackup(ctx, e, r, set, o.force, bar)
		progress.Done(bar)
		if snap != nil {
			fmt.Fprintf(e.stdout, "snapshot %s of %s: %d files, %s, %s new, %s stored\n",
				snap.ID, snap.Set, snap.Files, humanBytes(snap.Bytes), humanBytes(snap.NewBytes), humanBytes(snap.Stored))
		}
		switch {
		case errors.Is(err, files.ErrChanged):
			changed = true
			fmt.Fprintf(e.stderr, "pitr: %s\n", oneLine(err.Error()))
		case err != nil:
			errs = append(errs, err)
		}
	}
	switch {
	case len(errs) == 1:
		return errs[0]
	case len(errs) > 1:
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = err.Error()
		}
		return fmt.Errorf("%d of %d file sets failed: %s", len(errs), len(sets), strings.Join(msgs, "; "))
	case changed:
		return exitCodeError{code: exitChanged, err: errors.New("files changed while read (see above); their snapshots are stored, those files flagged changed")}
	}
	return nil
}

// filesBackup takes one snapshot of set in r; bar (nil: none) hears the
// bytes scanned.
func filesBackup(ctx context.Context, e *env, r *repo.Repo, set config.FileSet, forceRead bool, bar progress.Meter) (*catalog.Snapshot, error) {
	key, err := e.dedupKey(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := files.Backup(ctx, files.Options{
		Repo: r, Name: set.Name, Kind: string(set.Kind), Paths: set.Paths, Exclude: set.Exclude,
		DedupKey: key, CacheDir: e.filesCacheDir(), PitrVersion: version, AfterRead: filesAfterRead, NoCache: forceRead,
		Progress: bar,
	})
	if errors.Is(err, repo.ErrDedupKeyMismatch) {
		err = fmt.Errorf("files_dedup_key %s: %w", e.dedupKeyPath(), err)
	}
	return snap, err
}

// dedupKeyPath is files_dedup_key, else dedup.key beside the config file,
// else defaultDedupKey.
func (e *env) dedupKeyPath() string {
	switch {
	case e.cfg.FilesDedupKey != "":
		return e.cfg.FilesDedupKey
	case e.configFile != "":
		dir := filepath.Dir(e.configFile)
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		return filepath.Join(dir, "dedup.key")
	}
	return defaultDedupKey
}

// dedupKey loads the dedup key, creating it on first use.
func (e *env) dedupKey(ctx context.Context) (files.DedupKey, error) {
	path := e.dedupKeyPath()
	k, created, err := files.LoadOrCreateDedupKey(path)
	if err != nil {
		return k, fmt.Errorf("files_dedup_key: %w", err)
	}
	if created {
		zerolog.Ctx(ctx).Info().Str("path", path).Msg("dedup key created: copy it to every host that snapshots into this repository")
	}
	return k, nil
}

// filesCacheDir is the local chunk-index cache for the repository (see
// repoCacheDir); "" (no cache) when no place is known.
func (e *env) filesCacheDir() string { return e.repoCacheDir("files-index", "index") }

// repoCacheDir is a local place for what pitr remembers of the repository:
// <spool_dir>/<spoolName>/<hash of the repository URL> when spool_dir is
// set, else <user cache dir>/pitr/<hash>/<cacheName>; "" when neither is
// known.
func (e *env) repoCacheDir(spoolName, cacheName string) string {
	sum := sha256.Sum256([]byte(e.cfg.Repo))
	h := hex.EncodeToString(sum[:8])
	if e.cfg.SpoolDir != "" {
		return filepath.Join(e.cfg.SpoolDir, spoolName, h)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "pitr", h, cacheName)
}
