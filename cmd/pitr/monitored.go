package main

// The repositories pitr status, pitr check and the daemon's monitor: job
// look at: picking them from --repo, monitor: or repo, opening and gathering.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/daemon"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/status"
)

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
	st, err := openLocation(ctx, m.settings.Repo, locationOptions(&e.cfg, m.settings, false))
	if err != nil {
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
