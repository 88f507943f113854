package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/check"
	"github.com/pitr-dev/pitr/internal/config"
)

// Nagios plugin exit statuses (https://nagios-plugins.org/doc/guidelines.html#AEN78).
const (
	exitCheckUnknown = 3
)

func newCheckCommand(e *env) *cobra.Command {
	var repos []string
	def := config.DefaultCheck()
	flags := map[string]*time.Duration{} // by config key
	cmd := &cobra.Command{
		Use:   "check [--repo URL]... [--warn-X DURATION] [--max-X DURATION]",
		Short: "Nagios/Icinga plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, with performance data",
		Long: `Check the repository as a Nagios or Icinga plugin: print one status line with
performance data, then one line per problem, and exit 0 (OK), 1 (WARNING),
2 (CRITICAL) or 3 (UNKNOWN: no repository, unreachable, bad flags or settings).
Each age has a warning and a critical threshold, from the check: section, else
the defaults, and overridden by --warn-X/--max-X (0 leaves that level out; both
0 turn the check off): the newest usable base backup, the newest stored WAL
(the current RPO), the newest dump of each database and snapshot of each file
set, the last verify and restore drill (a failed one is CRITICAL), the off-site
copy's lag. No backup at all, a WAL gap or a WAL conflict is CRITICAL. It reads
only plaintext: no identity is needed. --repo, repeatable, checks several
repositories (default: monitor:, else repo): the worst state wins, problems
name their cluster and performance labels start with "<cluster>.".`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			set := map[string]time.Duration{}
			for key, v := range flags {
				if c.Flags().Changed(strings.ReplaceAll(key, "_", "-")) {
					set[key] = *v
				}
			}
			return runCheck(c.Context(), e, repos, set)
		},
	}
	cmd.Flags().StringArrayVar(&repos, "repo", nil, "repository URL; repeat for several (default: monitor:, else repo)")
	forEachThreshold(&def, func(key, doc string, v *time.Duration) {
		flags[key] = new(time.Duration)
		cmd.Flags().DurationVar(flags[key], strings.ReplaceAll(key, "_", "-"), *v, doc+" (check."+key+")")
	})
	return cmd
}

// forEachThreshold calls fn with each threshold of c: its config key,
// doc and value.
func forEachThreshold(c *config.Check, fn func(key, doc string, v *time.Duration)) {
	v := reflect.ValueOf(c).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		fn(f.Tag.Get("yaml"), f.Tag.Get("doc"), v.Field(i).Addr().Interface().(*time.Duration))
	}
}

// runCheck gathers each repository's status and prints the plugin's
// result; set holds the thresholds given as flags, by config key.
func runCheck(ctx context.Context, e *env, urls []string, set map[string]time.Duration) error {
	th := config.DefaultCheck()
	if e.cfg.Check != nil {
		th = *e.cfg.Check
	}
	forEachThreshold(&th, func(key, _ string, v *time.Duration) {
		if x, ok := set[key]; ok {
			*v = x
		}
	})
	cfg := config.Config{Check: &th}
	if err := cfg.ValidateMonitor(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ms, err := e.monitoredRepos(urls)
	if err != nil {
		return err
	}
	all, err := e.gatherAll(ctx, ms)
	if err != nil {
		return err
	}
	targets := make([]check.Target, len(all))
	for i, s := range all {
		targets[i] = check.Target{Status: s, Databases: ms[i].databases, FileSets: ms[i].fileSets}
	}
	res := check.Evaluate(targets, thresholds(th))
	fmt.Fprint(e.stdout, res.String())
	if res.State == check.OK {
		return nil
	}
	return exitCodeError{code: int(res.State)} // the output says it all
}

// thresholds converts the check: settings.
func thresholds(c config.Check) check.Thresholds {
	p := func(w, m time.Duration) check.Pair { return check.Pair{Warn: w, Crit: m} }
	return check.Thresholds{
		BackupAge: p(c.WarnBackupAge, c.MaxBackupAge),
		WALAge:    p(c.WarnWALAge, c.MaxWALAge),
		DumpAge:   p(c.WarnDumpAge, c.MaxDumpAge),
		FilesAge:  p(c.WarnFilesAge, c.MaxFilesAge),
		VerifyAge: p(c.WarnVerifyAge, c.MaxVerifyAge),
		DrillAge:  p(c.WarnDrillAge, c.MaxDrillAge),
		CopyLag:   p(c.WarnCopyLag, c.MaxCopyLag),
	}
}

// checkExit makes every failure of pitr check a plugin result: an error
// (bad flags, settings, no repository) prints "PITR UNKNOWN - ..." on
// stdout, where the monitoring system reads it, and exits 3, not 1 or 2
// (2 would read as CRITICAL).
func checkExit(stdout io.Writer, err error) error {
	var ec exitCodeError
	if err == nil || errors.As(err, &ec) {
		return err
	}
	fmt.Fprintf(stdout, "PITR UNKNOWN - %s\n", strings.TrimPrefix(oneLine(err.Error()), errUsage.Error()+": "))
	return exitCodeError{code: exitCheckUnknown, err: err}
}
