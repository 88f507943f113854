package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/copy"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/storage"
)

type copyOptions struct {
	to             string
	dryRun, verify bool
}

func newCopyCommand(e *env) *cobra.Command {
	var o copyOptions
	cmd := &cobra.Command{
		Use:   "copy [--to URL] [--dry-run] [--verify]",
		Short: "Copy what the off-site repository lacks from the primary, as ciphertext",
		Long: `Copy every object of the primary repository that the target lacks: WAL, base
backups, dumps and file snapshots, as the stored ciphertext (no identity or
dedup key needed). The target is --to, or the offsite: section of the config;
a --to naming offsite.repo uses that section's settings, any other --to the
primary's S3 settings. Off-site S3 credentials of their own:
PITR_OFFSITE_AWS_ACCESS_KEY_ID and PITR_OFFSITE_AWS_SECRET_ACCESS_KEY.
Entries (backup.json, dump.json, snapshot.json) are copied last, once what
they need is in the target. Every copy is read back and compared by SHA-256;
objects already there are compared by size, and with --verify by content: one
that differs is kept under quarantine/ in the target and copied again.
Nothing else is ever replaced or deleted in the target. An interrupted copy
picks up where it stopped when run again. --dry-run reports how far behind the
target is, by kind, and changes nothing.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runCopy(c.Context(), e, o) },
	}
	cmd.Flags().StringVar(&o.to, "to", "", "target repository URL (default: offsite.repo)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "report what the target lacks, change nothing")
	cmd.Flags().BoolVar(&o.verify, "verify", false, "compare the content of objects the target holds already, not only their size (reads both sides)")
	return cmd
}

// copyTarget picks the target repository's settings; offsite says they
// are the offsite: section's.
func copyTarget(cfg *config.Config, to string) (r config.Repository, offsite bool, err error) {
	same := func(a, b string) bool { return strings.TrimRight(a, "/") == strings.TrimRight(b, "/") }
	switch {
	case to == "" && cfg.Offsite == nil:
		return r, false, fmt.Errorf("%w: no target: give --to URL, or an offsite: section in the config file", errUsage)
	case to == "" && same(cfg.Offsite.Repo, cfg.Repo):
		return r, false, fmt.Errorf("%w: offsite.repo %s is repo itself: name another repository (a restore from the copy needs no copy)", errUsage, cfg.Offsite.Repo)
	case to == "":
		return *cfg.Offsite, true, nil
	case !strings.HasPrefix(to, "s3://") && !strings.HasPrefix(to, "file://"):
		return r, false, fmt.Errorf("%w: --to %q: want s3://bucket/prefix or file:///absolute/path", errUsage, to)
	case same(to, cfg.Repo):
		return r, false, fmt.Errorf("%w: --to %s is the primary repository itself", errUsage, to)
	case cfg.Offsite != nil && same(to, cfg.Offsite.Repo):
		return *cfg.Offsite, true, nil
	}
	r = cfg.Primary()
	r.Repo = to
	return r, false, nil
}

// CopyOffsite returns the daemon's copier to the off-site repository, or
// nil when the config has none; its Kick is a no-op then.
func (e *env) CopyOffsite(ctx context.Context, source storage.Storage) (*copy.Follower, error) {
	if e.cfg.Offsite == nil {
		return nil, nil
	}
	if _, _, err := copyTarget(&e.cfg, ""); err != nil {
		return nil, err
	}
	dst, err := e.OpenSecond(ctx, *e.cfg.Offsite, true, true)
	if err != nil {
		return nil, fmt.Errorf("offsite: %w", err)
	}
	return copy.NewFollower(copy.Options{Source: source, Target: dst, Retry: e.retryPolicy()}, e.cfg.DaemonRetryBackoff, nil), nil
}

func runCopy(ctx context.Context, e *env, o copyOptions) error {
	target, offsite, err := copyTarget(&e.cfg, o.to)
	if err != nil {
		return err
	}
	src, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	dst, err := e.OpenSecond(ctx, target, offsite, !o.dryRun)
	if o.dryRun && errors.Is(err, catalog.ErrNoRepository) {
		dst, err = nil, nil // not made yet: everything is behind
	}
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	var bar progress.Meter // the job knows the bytes to copy once it has listed both sides
	if !o.dryRun {
		bar = newMeter(e, "copy", 0)
	}
	res, err := copy.Run(ctx, copy.Options{Source: src.Store(), Target: dst, DryRun: o.dryRun, Verify: o.verify, Retry: e.retryPolicy(), Progress: bar})
	progress.Done(bar)
	if o.dryRun && err == nil {
		return printBehind(e, target.Repo, res)
	}
	if res != nil {
		c := copy.Total(res.Copied)
		fmt.Fprintf(e.stdout, "copied %d objects (%s) to %s, skipped %d already there, repaired %d, in %s\n",
			c.Objects, humanBytes(c.Bytes), target.Repo, copy.Total(res.Skipped).Objects,
			copy.Total(res.Repaired).Objects, res.Duration.Round(10*time.Millisecond))
	}
	return err
}

// printBehind prints a dry run: what the target lacks, by kind.
func printBehind(e *env, where string, res *copy.Result) error {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tMISSING\tBYTES\tDAMAGED\tPRESENT")
	for _, k := range copy.Kinds {
		b, d, s := res.Behind[k], res.Damaged[k], res.Skipped[k]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\n", k, b.Objects, humanBytes(b.Bytes), d.Objects, s.Objects)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b, d := copy.Total(res.Behind), copy.Total(res.Damaged)
	fmt.Fprintf(e.stdout, "%s is %d objects (%s) behind", where, b.Objects, humanBytes(b.Bytes))
	if d.Objects > 0 {
		fmt.Fprintf(e.stdout, "; %d objects there differ from the source", d.Objects)
	}
	fmt.Fprintln(e.stdout)
	return nil
}
