package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/daemon"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/retention"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// retainFlags are pitr retain's flags.
type retainFlags struct {
	dryRun, asJSON               bool
	backups, dumps, files        bool
	last, daily, weekly, monthly int
	yearly                       int
	within                       string
	grace                        string
	policySet                    bool // a --keep-* flag was given
	graceSet                     bool
}

func newRetainCommand(e *env) *cobra.Command {
	var f retainFlags
	cmd := &cobra.Command{
		Use:   "retain [--dry-run] [--keep-last N ...] [--backups|--dumps|--files]",
		Short: "Delete what the retention policy no longer keeps: backups, their WAL, dumps, file snapshots",
		Long: `Apply the retention policy (the config's retention:, or --keep-* flags, which
replace it for the kinds selected) to base backups, logical dumps (each
database on its own) and file snapshots (each set on its own), as restic
forget does: keep-daily keeps the newest of each of the last N days that have
one, weeks run Monday to Sunday, days follow this host's time zone, and an
item any rule keeps is kept. Pinned items (pitr pin) and the newest backup are
always kept. WAL goes only when no kept backup needs it; timeline history
files never. Leftovers of interrupted jobs older than --grace go too.
--dry-run prints the same lines and deletes nothing. pitr retain is the only
command that deletes: it needs storage credentials that may.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			fl := c.Flags()
			for _, n := range []string{"keep-last", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly", "keep-within"} {
				f.policySet = f.policySet || fl.Changed(n)
			}
			f.graceSet = fl.Changed("grace")
			return runRetain(c.Context(), e, f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "print what would be deleted, the bytes freed and the window that remains; delete nothing")
	fl.BoolVar(&f.asJSON, "json", false, "print JSON for scripts")
	fl.BoolVar(&f.backups, "backups", false, "only base backups and their WAL")
	fl.BoolVar(&f.dumps, "dumps", false, "only logical dumps")
	fl.BoolVar(&f.files, "files", false, "only file snapshots and their packs")
	fl.IntVar(&f.last, "keep-last", 0, "keep the newest N")
	fl.IntVar(&f.daily, "keep-daily", 0, "keep the newest of each of the last N days that have one")
	fl.IntVar(&f.weekly, "keep-weekly", 0, "keep the newest of each of the last N weeks (Monday to Sunday)")
	fl.IntVar(&f.monthly, "keep-monthly", 0, "keep the newest of each of the last N months")
	fl.IntVar(&f.yearly, "keep-yearly", 0, "keep the newest of each of the last N years")
	fl.StringVar(&f.within, "keep-within", "", "keep everything newer than this, e.g. 30d or 72h")
	fl.StringVar(&f.grace, "grace", "", "remove leftovers of interrupted jobs older than this; 0 keeps them (default: backup_stale_after)")
	return cmd
}

// parseDays parses a duration with a d (24h) unit too: 30d, 1d12h, 90m.
func parseDays(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("%q: want e.g. 30d or 72h", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want e.g. 30d or 72h", s)
	}
	return days + d, nil
}

// retainOptions turns flags and config into the job's options.
func retainOptions(cfg *config.Config, f retainFlags) (retention.Options, error) {
	o := retention.Options{DryRun: f.dryRun, Loc: time.Local, Grace: cfg.BackupStaleAfter,
		DoBackups: f.backups, DoDumps: f.dumps, DoFiles: f.files}
	if !o.DoBackups && !o.DoDumps && !o.DoFiles {
		o.DoBackups, o.DoDumps, o.DoFiles = true, true, true
	}
	if f.graceSet {
		g, err := parseDays(f.grace)
		if err != nil || g < 0 {
			return o, fmt.Errorf("%w: --grace %s", errUsage, f.grace)
		}
		o.Grace = g
	}
	o.Backups, o.Dumps, o.Files = policyOf(cfg.Retention.Backups), policyOf(cfg.Retention.Dumps), policyOf(cfg.Retention.Files)
	if f.policySet {
		for _, n := range []int{f.last, f.daily, f.weekly, f.monthly, f.yearly} {
			if n < 0 {
				return o, fmt.Errorf("%w: --keep-* counts must be 0 or more", errUsage)
			}
		}
		p := retention.Policy{KeepLast: f.last, KeepDaily: f.daily, KeepWeekly: f.weekly, KeepMonthly: f.monthly, KeepYearly: f.yearly}
		if f.within != "" {
			d, err := parseDays(f.within)
			if err != nil || d < 0 {
				return o, fmt.Errorf("%w: --keep-within %s", errUsage, f.within)
			}
			p.KeepWithin = d
		}
		if o.DoBackups {
			o.Backups = p
		}
		if o.DoDumps {
			o.Dumps = p
		}
		if o.DoFiles {
			o.Files = p
		}
	}
	return o, nil
}

// policyOf is the job's form of a config policy (nil keeps everything).
func policyOf(p *config.Policy) retention.Policy {
	if p == nil {
		return retention.Policy{}
	}
	return retention.Policy{KeepLast: p.KeepLast, KeepDaily: p.KeepDaily, KeepWeekly: p.KeepWeekly,
		KeepMonthly: p.KeepMonthly, KeepYearly: p.KeepYearly, KeepWithin: p.KeepWithin}
}

func runRetain(ctx context.Context, e *env, f retainFlags) error {
	o, err := retainOptions(&e.cfg, f)
	if err != nil {
		return err
	}
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	if err := retainHooks(ctx, e, r, &o); err != nil {
		return err
	}
	res, err := retention.Run(ctx, r, o)
	if err != nil {
		return err // what was planned is not what was done: print nothing
	}
	if f.asJSON {
		return writeJSON(e.stdout, res)
	}
	printRetain(e.stdout, res)
	return nil
}

// printRetain prints one line per kind, the same for a dry run and a real
// one, then the window that remains.
func printRetain(w io.Writer, res *retention.Result) {
	kind := func(name string, k *retention.KindResult) {
		if k != nil {
			fmt.Fprintf(w, "%s: keep %d, delete %d (%s)\n", name, k.Keep, k.Delete, humanBytes(k.Bytes))
		}
	}
	kind("backups", res.Backups)
	kind("dumps", res.Dumps)
	kind("files", res.Files)
	if res.WAL != nil {
		fmt.Fprintf(w, "wal: keep %d files, delete %d (%s)", res.WAL.Keep, res.WAL.Delete, humanBytes(res.WAL.Bytes))
		if res.WALKept != "" {
			fmt.Fprintf(w, "; all kept: %s", res.WALKept)
		}
		fmt.Fprintln(w)
	}
	extra := func(name string, k *retention.KindResult, what string) {
		if k != nil && k.Delete > 0 {
			fmt.Fprintf(w, "%s: delete %d %s (%s)\n", name, k.Delete, what, humanBytes(k.Bytes))
		}
	}
	extra("streamed wal", res.Streamed, "chunks of segments stored whole")
	extra("leftovers", res.Leftovers, "interrupted backups, dumps or snapshots")
	extra("pins", res.Pins, "superseded pin records")
	extra("reports", res.Reports, "old reports")
	if res.Packs != nil {
		fmt.Fprintf(w, "file packs: %s (%s)\n", res.Packs.Summary, humanBytes(res.Packs.Bytes))
	}
	if res.Backups != nil {
		fmt.Fprintf(w, "window: %s\n", repo.Describe(res.Windows))
	}
	if res.Locked > 0 {
		until := ""
		if !res.LockedUntil.IsZero() {
			until = " until " + res.LockedUntil.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%d objects locked%s, kept for now\n", res.Locked, until)
	}
	if res.DryRun {
		fmt.Fprintln(w, "dry run: nothing deleted")
	}
}

// daemonRetainer is the daemon's retention after each successful job: the
// config's policies, every kind. It is nil when daemon_retain is off or no
// policy is configured.
func daemonRetainer(e *env, r *repo.Repo) *daemon.Retainer {
	rt := e.cfg.Retention
	if (e.cfg.DaemonRetain != nil && !*e.cfg.DaemonRetain) || (rt.Backups.KeepsAll() && rt.Dumps.KeepsAll() && rt.Files.KeepsAll()) {
		return nil
	}
	return daemon.NewRetainer(func(ctx context.Context) error { return withJobMemory(func() error { return retainOnce(ctx, e, r) }) })
}

// retainOnce is one of the daemon's retention runs.
func retainOnce(ctx context.Context, e *env, r *repo.Repo) error {
	o, err := retainOptions(&e.cfg, retainFlags{})
	if err != nil {
		return err
	}
	if err := retainHooks(ctx, e, r, &o); err != nil {
		return err
	}
	res, err := retention.Run(ctx, r, o)
	if res != nil {
		var buf strings.Builder
		printRetain(&buf, res)
		zerolog.Ctx(ctx).Info().Strs("result", strings.Split(strings.TrimSpace(buf.String()), "\n")).Msg("retention result")
	}
	return err
}

// retainHooks sets the file-pack garbage collection (it reads the kept
// snapshots' manifests: with encryption, that needs the identity) and,
// with S3 Object Lock, the extension of the kept chain's locks.
func retainHooks(ctx context.Context, e *env, r *repo.Repo, o *retention.Options) error {
	if o.DoFiles {
		o.PlanPacks = func(ctx context.Context, kept, dropped []*catalog.Snapshot, now time.Time, grace time.Duration) (*retention.PackPlan, error) {
			pr := r // with no snapshot kept, no manifest is read (unless one finishes meanwhile: the GC then refuses)
			if len(kept) > 0 || e.cfg.AgeIdentityFile != "" {
				if e.cfg.Encryption != "none" && e.cfg.AgeIdentityFile == "" {
					return &retention.PackPlan{Summary: "not collected: reading the kept snapshots needs the identity (age_identity_file)"}, nil
				}
				codec, err := e.Codec(false) // recipients: a repack writes new packs
				if err != nil {
					return nil, err
				}
				withKey, err := e.Codec(true)
				if err != nil {
					return nil, err
				}
				codec.Identities = withKey.Identities
				pr = repo.New(r.Store(), codec)
			}
			g, err := pr.PlanPackGC(ctx, dropped, now, grace)
			if err != nil {
				return nil, err
			}
			s := g.Summary()
			if s.Packs == 0 && s.DeletePacks == 0 && s.WaitingPacks == 0 {
				return nil, nil // no file snapshots in this repository: nothing to say
			}
			return &retention.PackPlan{Bytes: s.DeleteBytes, Apply: g.Apply,
				Summary: fmt.Sprintf("delete %d (%s), condemn %d (%s, deleted after the grace), repack %d, waiting %d",
					s.DeletePacks, humanBytes(s.DeleteBytes), s.CondemnPacks, humanBytes(s.CondemnBytes), s.RepackPacks, s.WaitingPacks)}, nil
		}
	}
	if _, ok := storage.LockerOf(r.Store()); ok && e.cfg.S3ObjectLock != "" {
		days := e.cfg.ObjectLockDays(e.cfg.Primary())
		o.ExtendLocks = func(ctx context.Context, kept []*catalog.Backup, ix *wal.Index) (int, error) {
			until := time.Now().Add(time.Duration(days) * 24 * time.Hour)
			return retention.ExtendLocks(ctx, r.Store(), kept, ix, until)
		}
	}
	return nil
}
