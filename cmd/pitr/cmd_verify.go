package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/verify"
)

type verifyOptions struct {
	backup                  string
	wal, dumps, files, full bool
	subset                  string
	json                    bool
}

func newVerifyCommand(e *env) *cobra.Command {
	var o verifyOptions
	var df drillFlags
	cmd := &cobra.Command{
		Use:   "verify [--backup ID] [--wal] [--dumps] [--files] [--full] [--read-data-subset N/M] [--json]",
		Short: "Read back every object and check it against its recorded SHA-256, and the WAL chains for gaps",
		Long: `Read every object of the repository as a stream (nothing is written to disk) and
check it: WAL and stream chunks against the SHA-256 in their key, backup parts
against backup.json, dumps against dump.json, snapshot manifests against
snapshot.json, packs against the SHA-256 of their stored bytes and each chunk
in them against its manifest. Every part, archive, manifest and pack an entry
or index names must be stored with its size, every chunk a manifest names must
be in a pack, and the WAL from each backup's start must be continuous on every
timeline it can reach: each gap is named with the window it breaks.

With no kind flag everything is checked; --backup ID checks one backup's parts
and the WAL it needs. What was verified is recorded in the local cache
($XDG_CACHE_HOME/pitr/..., or spool_dir), so the next run reads only new
objects; --full reads everything again. --read-data-subset N/M reads only the
objects whose key hashes to N of M classes (1/7 to 7/7 over a week read all).

Without the age identity only presence, sizes and the stored checksums of
packs and backup parts are checked, and verify says so. Exit status 0: all good; 1: problems, one line each. The
result is saved as a report (reports/verify/) for pitr check and pitr status.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			drill, _ := c.Flags().GetBool("restore-drill")
			if drill || c.Flags().Changed("to") {
				return runDrill(c.Context(), e, df)
			}
			return runVerify(c.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.backup, "backup", "", "check only this backup's parts and the WAL it needs")
	f.BoolVar(&o.wal, "wal", false, "check the archived WAL and its chains")
	f.BoolVar(&o.dumps, "dumps", false, "check the logical dumps")
	f.BoolVar(&o.files, "files", false, "check the file snapshots (manifests, chunks, packs)")
	f.BoolVar(&o.full, "full", false, "read every object again, also those verified before")
	f.StringVar(&o.subset, "read-data-subset", "", "read only subset N of M (e.g. 1/7); presence and sizes are still checked for all")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	addDrillFlags(cmd, &df)
	return cmd
}

func runVerify(ctx context.Context, e *env, o verifyOptions) error {
	opts := verify.Options{Backup: o.backup, WAL: o.wal, Dumps: o.dumps, Files: o.files, Full: o.full,
		StateFile: e.verifyStateFile(), IndexCacheDir: e.filesCacheDir()}
	if o.subset != "" {
		s, err := verify.ParseSubset(o.subset)
		if err != nil {
			return fmt.Errorf("%w: --read-data-subset: %v", errUsage, err)
		}
		opts.Subset = s
	}
	r, err := e.Repo(ctx, true)
	if err != nil {
		return err
	}
	if !o.json {
		opts.Progress = newMeter(e, "verify", 0) // the job sets the total it will read
	}
	res, err := verify.Run(ctx, r, opts)
	progress.Done(opts.Progress)
	if err != nil {
		return err
	}
	rep := res.Report()
	rep.Tool = "pitr " + version
	if err := r.SaveReport(ctx, rep); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("verify report not saved: pitr check and pitr status will not see this run")
	}
	if o.json {
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
	} else {
		if !res.Decrypted {
			fmt.Fprintln(e.stdout, verify.NoIdentity)
		}
		line := res.Summary()
		if res.OK() {
			line += " in " + res.Finished.Sub(res.Started).Round(10*time.Millisecond).String()
		}
		fmt.Fprintln(e.stdout, line)
		for _, p := range res.Problems {
			fmt.Fprintln(e.stdout, p)
		}
	}
	if !res.OK() {
		return exitCodeError{code: exitError, err: errors.New(res.Summary() + " (see above)")}
	}
	return nil
}

// verifyStateFile is where verify records what it verified in the
// repository (see repoCacheDir); "" (none: every run reads everything)
// when no place is known.
func (e *env) verifyStateFile() string { return e.repoCacheDir("verified", "verified") }
