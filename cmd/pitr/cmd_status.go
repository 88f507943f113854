package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/smithy-go"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/check"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/daemon"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/status"
	"github.com/pitr-dev/pitr/storage/location"
)

func newStatusCommand(e *env) *cobra.Command {
	var asJSON bool
	var repos []string
	cmd := &cobra.Command{
		Use:   "status [--json] [--repo URL]...",
		Short: "Show the repository's backups, recoverable window, RPO, last verify and drill, dumps and file sets",
		Long: `Show, on one screen, what the repository holds and how healthy it is: the
repository (and the off-site one, with how far behind it is), each base backup
with the retention rule that keeps it, the recoverable window and timelines,
the current RPO (how long ago the newest WAL was stored), the last verify and
restore drill (with its RTO), and the newest dump of each database and snapshot
of each file set. It reads only plaintext (listings, entries, reports): no
identity is needed. --repo, repeatable, names the repositories to show (each
labelled by its prefix's last element, or by the monitor: entry of that URL);
without it, the monitor: section's, else the repository. --json prints the
status (a list of them for several repositories).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runStatus(c.Context(), e, repos, asJSON) },
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.Flags().StringArrayVar(&repos, "repo", nil, "repository URL; repeat for several (default: monitor:, else repo)")
	return cmd
}

// monitored is one repository pitr status and check look at.
type monitored struct {
	name       string
	settings   config.Repository
	primary    bool     // the config's repository: its offsite: and expectations apply
	databases  []string // dumps expected (dump_databases), primary only
	fileSets   []string // file sets expected (files:), primary only
	offsiteURL string
}

// monitoredRepos picks the repositories: --repo URLs (one is the
// repository, as --repo is for every command), else monitor:, else repo.
func (e *env) monitoredRepos(urls []string) ([]monitored, error) {
	if err := e.cfg.ValidateMonitor(); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	byURL := map[string]config.Monitored{}
	for _, m := range e.cfg.Monitor {
		byURL[strings.TrimRight(m.Repo, "/")] = m
	}
	entry := func(m config.Monitored) monitored {
		name := m.Name
		if name == "" {
			name = config.ClusterName(m.Repo)
		}
		return monitored{name: name, settings: e.cfg.MonitoredRepository(m)}
	}
	primary := func() monitored {
		m := monitored{name: config.ClusterName(e.cfg.Repo), settings: e.cfg.Primary(), primary: true, databases: e.cfg.DumpDatabases}
		if mm, ok := byURL[strings.TrimRight(e.cfg.Repo, "/")]; ok && mm.Name != "" {
			m.name = mm.Name
		}
		for _, fs := range e.cfg.Files {
			m.fileSets = append(m.fileSets, fs.Name)
		}
		if e.cfg.Offsite != nil {
			m.offsiteURL = e.cfg.Offsite.Repo
		}
		return m
	}
	var out []monitored
	switch {
	case len(urls) == 1:
		e.cfg.Repo = urls[0]
		out = append(out, primary())
	case len(urls) > 1:
		for _, u := range urls {
			if m, ok := byURL[strings.TrimRight(u, "/")]; ok {
				out = append(out, entry(m))
				continue
			}
			r := e.cfg.Primary()
			r.Repo = u
			out = append(out, monitored{name: config.ClusterName(u), settings: r})
		}
	case len(e.cfg.Monitor) > 0:
		for _, m := range e.cfg.Monitor {
			out = append(out, entry(m))
		}
	case e.cfg.Repo != "":
		out = append(out, primary())
	default:
		return nil, fmt.Errorf("%w: no repository: set repo, a monitor: section, or give --repo URL", errUsage)
	}
	seen := map[string]bool{}
	for _, m := range out {
		if !strings.HasPrefix(m.settings.Repo, "s3://") && !strings.HasPrefix(m.settings.Repo, "file://") {
			return nil, fmt.Errorf("%w: repository %q: want s3://bucket/prefix or file:///absolute/path", errUsage, m.settings.Repo)
		}
		if seen[m.name] {
			return nil, fmt.Errorf("%w: two repositories are labelled %q: name them in a monitor: section", errUsage, m.name)
		}
		seen[m.name] = true
	}
	return out, nil
}

// openMonitored opens an existing repository for reading its listing.
func (e *env) openMonitored(ctx context.Context, m monitored) (*repo.Repo, error) {
	if m.primary && e.store != nil { // tests, and a daemon that opened it already
		return repo.Open(ctx, e.store, nil, m.settings.Repo)
	}
	st, err := location.Open(ctx, m.settings.Repo, locationOptions(&e.cfg, m.settings, false))
	var usage *location.UsageError
	var none *location.NoRepositoryError
	switch {
	case errors.As(err, &usage):
		return nil, fmt.Errorf("%w: %s", errUsage, usage.Msg)
	case errors.As(err, &none):
		return nil, repo.NoRepository(none.URL, none.Why)
	case err != nil:
		return nil, err
	}
	r, err := repo.Open(ctx, st, nil, m.settings.Repo)
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return nil, repo.NoRepository(m.settings.Repo, "the bucket does not exist")
	}
	return r, err
}

// gatherAll reads each repository's status, four at a time, in the
// order of ms; one that cannot be read has Status.Error set (a usage
// error, such as a bad URL, fails it all).
func (e *env) gatherAll(ctx context.Context, ms []monitored) ([]*status.Status, error) {
	out := make([]*status.Status, len(ms))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, m := range ms {
		g.Go(func() error {
			s, err := e.gatherOne(gctx, m)
			out[i] = s
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// gatherOne reads one repository's status; only a usage error is
// returned, any other is the status's Error.
func (e *env) gatherOne(ctx context.Context, m monitored) (*status.Status, error) {
	failed := func(err error) *status.Status {
		return &status.Status{Name: m.name, Repo: m.settings.Repo, Checked: time.Now().UTC(), Error: oneLine(err.Error())}
	}
	// retention.backups is the primary's; a monitored repository's
	// policy is its own host's, not known here: no rules then.
	opts := status.Options{Name: m.name, URL: m.settings.Repo, Loc: time.Local}
	if m.primary {
		p := policyOf(e.cfg.Retention.Backups)
		opts.Retention = &p
	}
	r, err := e.openMonitored(ctx, m)
	if errors.Is(err, errUsage) {
		return nil, err
	}
	if err != nil {
		return failed(err), nil
	}
	// With the identity, or unencrypted, the timeline histories can be
	// read, and the windows follow the timeline restore follows.
	switch {
	case e.cfg.Encryption == "none": // no warning each time: e.Codec logs one
		r, opts.Histories = repo.New(r.Store(), &envelope.Codec{}), true
	case e.cfg.AgeIdentityFile != "":
		if codec, cerr := e.Codec(true); cerr == nil {
			r, opts.Histories = repo.New(r.Store(), codec), true
		}
	}
	if m.offsiteURL != "" {
		opts.OffsiteURL = m.offsiteURL
		if _, _, err := copyTarget(&e.cfg, ""); err != nil {
			opts.OffsiteErr = err
		} else if st, err := e.OpenSecond(ctx, *e.cfg.Offsite, true, false); err != nil {
			opts.OffsiteErr = err
		} else if opts.Offsite, err = repo.Open(ctx, st, nil, m.offsiteURL); err != nil {
			opts.Offsite, opts.OffsiteErr = nil, err
		}
	}
	s, err := status.Gather(ctx, r, opts)
	if err != nil {
		return failed(err), nil
	}
	return s, nil
}

func runStatus(ctx context.Context, e *env, urls []string, asJSON bool) error {
	ms, err := e.monitoredRepos(urls)
	if err != nil {
		return err
	}
	all, err := e.gatherAll(ctx, ms)
	if err != nil {
		return err
	}
	if asJSON {
		if len(all) == 1 {
			return writeJSON(e.stdout, all[0])
		}
		return writeJSON(e.stdout, all)
	}
	for i, s := range all {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		printStatus(e.stdout, s)
	}
	if len(all) == 1 && all[0].Error != "" {
		return errors.New(all[0].Error)
	}
	return nil
}

// printStatus writes one repository's status for a person.
func printStatus(w io.Writer, s *status.Status) {
	ago := func(t time.Time) string { return check.Human(s.Checked.Sub(t)) + " ago" }
	fmt.Fprintf(w, "cluster %s: %s", s.Name, s.Repo)
	if s.SystemID != "" {
		fmt.Fprintf(w, " (system identifier %s", s.SystemID)
		if s.PGVersion > 0 {
			fmt.Fprintf(w, ", PostgreSQL %d.%d", s.PGVersion/10000, s.PGVersion%10000)
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintln(w)
	if s.Error != "" {
		fmt.Fprintf(w, "  unreadable: %s\n", s.Error)
		return
	}
	if o := s.Offsite; o != nil {
		switch {
		case o.Error != "":
			fmt.Fprintf(w, "off-site %s: unreadable: %s\n", o.Repo, o.Error)
		case o.LagSeconds == 0:
			fmt.Fprintf(w, "off-site %s: up to date\n", o.Repo)
		default:
			fmt.Fprintf(w, "off-site %s: %s behind (lacks %d backups", o.Repo, check.Human(time.Duration(o.LagSeconds*float64(time.Second))), len(o.MissingBackups))
			if o.MissingWAL != "" {
				fmt.Fprintf(w, ", WAL from %s", o.MissingWAL)
			}
			fmt.Fprintln(w, ")")
		}
	}
	if s.WAL.NewestTime != nil {
		fmt.Fprintf(w, "RPO: newest WAL %s stored %s (%s)\n", s.WAL.Newest, ago(*s.WAL.NewestTime), s.WAL.NewestTime.Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "RPO: no WAL archived")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if len(s.Backups) > 0 {
		fmt.Fprintln(tw, "BACKUP\tENDED\tAGE\tTIMELINE\tSIZE\tSTORED\tKEPT BY\tSTATUS")
	}
	for _, b := range s.Backups {
		kept := strings.Join(b.KeptBy, ",")
		if kept == "" {
			kept = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", b.ID, b.EndTime.UTC().Format(time.RFC3339), ago(b.EndTime), b.Timeline,
			humanBytes(b.Bytes), humanBytes(b.Stored), kept, b.Status)
	}
	tw.Flush()
	if len(s.Backups) == 0 {
		fmt.Fprintln(w, "no backups")
	}
	for _, d := range s.Damaged {
		fmt.Fprintf(w, "damaged: %s (%s)\n", d.ID, d.Reason)
	}
	desc := repo.Describe(s.Windows)
	if len(s.Timelines) > 1 && s.WindowsTimeline != 0 && len(s.Windows) > 0 {
		desc += fmt.Sprintf(" on timeline %d", s.WindowsTimeline)
	}
	fmt.Fprintln(w, desc)
	if len(s.Timelines) > 0 {
		parts := make([]string, 0, len(s.Timelines))
		for _, t := range s.Timelines {
			p := fmt.Sprintf("%d", t.Timeline)
			if t.Parent != 0 {
				p += fmt.Sprintf(" (from %d, %s)", t.Parent, t.BranchKind)
			}
			if t.WALEndTime != nil {
				p += " to " + t.WALEndTime.Format(time.RFC3339)
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(w, "timelines: %s\n", strings.Join(parts, "; "))
	}
	for _, g := range s.WAL.Gaps {
		fmt.Fprintf(w, "WAL gap: %s is missing; recovery cannot reach the WAL stored after it\n", g)
	}
	for _, c := range s.WAL.Conflicts {
		fmt.Fprintf(w, "WAL conflict: %s is stored twice with different content\n", c)
	}
	fmt.Fprintln(w)
	printReport(w, "verify", s.Verify, ago)
	printReport(w, "drill", s.Drill, ago)
	printNewest(w, "DATABASE\tDUMPS", "dumps", s.Dumps, ago)
	printNewest(w, "FILE SET\tSNAPSHOTS", "file snapshots", s.FileSets, ago)
}

func printReport(w io.Writer, kind string, r *status.Report, ago func(time.Time) string) {
	if r == nil {
		fmt.Fprintf(w, "last %s: none\n", kind)
		return
	}
	result := "passed"
	if !r.OK {
		result = "FAILED"
	}
	fmt.Fprintf(w, "last %s: %s %s (%s)", kind, result, ago(r.Finished), r.ID)
	if r.RTOSeconds > 0 {
		fmt.Fprintf(w, ", RTO %s", time.Duration(r.RTOSeconds*float64(time.Second)).Round(100*time.Millisecond))
	}
	if r.Reached != nil {
		fmt.Fprintf(w, ", reached %s", r.Reached.UTC().Format(time.RFC3339))
	}
	if kind == "verify" && r.OK && !r.Decrypted {
		fmt.Fprint(w, " (without the identity: presence, sizes and ciphertext checksums only)")
	}
	if r.Summary != "" {
		fmt.Fprintf(w, ": %s", r.Summary)
	}
	fmt.Fprintln(w)
	if !r.OK {
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

func printNewest(w io.Writer, header, none string, ns []status.Newest, ago func(time.Time) string) {
	if len(ns) == 0 {
		fmt.Fprintf(w, "no %s\n", none)
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header+"\tNEWEST\tAGE\tSIZE\tDAMAGED")
	for _, n := range ns {
		newest, age := "-", "-"
		if n.ID != "" {
			newest, age = n.ID, ago(n.EndTime)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\n", n.Name, n.Count, newest, age, humanBytes(n.Bytes), n.Damaged)
	}
	tw.Flush()
}

// monitorJob is the daemon's job for the monitor: section (nil when
// there is none): each repository's status every minute, as metrics.
func (e *env) monitorJob() (*daemon.Job, error) {
	if len(e.cfg.Monitor) == 0 {
		return nil, nil
	}
	ms, err := e.monitoredRepos(nil)
	if err != nil {
		return nil, err
	}
	repos := make([]daemon.Monitored, len(ms))
	for i, m := range ms {
		repos[i] = daemon.Monitored{Name: m.name, Gather: func(ctx context.Context) (*status.Status, error) {
			return e.gatherOne(ctx, m)
		}}
	}
	j := daemon.MonitorJob(repos, time.Minute)
	return &j, nil
}

// runMonitorDaemon is pitr daemon on a host that only monitors (monitor:
// and no repo): metrics of the monitored repositories, nothing else.
func runMonitorDaemon(ctx context.Context, e *env) error {
	j, err := e.monitorJob()
	if err != nil {
		return err
	}
	return daemon.Run(ctx, daemon.Options{Jobs: []daemon.Job{*j}, MetricsAddr: e.cfg.MetricsAddr, Version: version})
}
