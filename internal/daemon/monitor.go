package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/status"
)

// Monitored is one repository the daemon watches (monitor: in the
// config): its cluster label and how to read its state.
type Monitored struct {
	Name   string
	Gather func(ctx context.Context) (*status.Status, error)
}

// MonitorJob reads each repository's status every interval (default 1m;
// a round still going when the next is due delays it) and exports it as
// gauges labelled cluster: pitr_backup_newest_timestamp_seconds,
// pitr_wal_newest_timestamp_seconds, pitr_wal_gaps, pitr_verify_last_*,
// pitr_drill_last_*, pitr_copy_lag_seconds and more (see
// docs/MONITORING.md). A repository that cannot be read has
// pitr_monitor_up 0 and keeps its last values.
func MonitorJob(repos []Monitored, interval time.Duration) Job {
	if interval <= 0 {
		interval = time.Minute
	}
	return Job{Name: "monitor",
		bind: func(m *metrics, now func() time.Time) func(context.Context, bool) error {
			c := &monitorCollector{now: now, last: map[string]*monitorState{}}
			for _, r := range repos {
				c.last[r.Name] = &monitorState{}
			}
			m.reg.MustRegister(c)
			return func(ctx context.Context, _ bool) error {
				t := time.NewTicker(interval)
				defer t.Stop()
				for {
					c.round(ctx, repos)
					select {
					case <-ctx.Done():
						return nil
					case <-t.C:
					}
				}
			}
		}}
}

// monitorState is what the last round found for one repository.
type monitorState struct {
	up      bool
	success time.Time      // the last gather that succeeded
	status  *status.Status // its result; nil until one succeeded
}

type monitorCollector struct {
	now  func() time.Time
	mu   sync.Mutex
	last map[string]*monitorState // by cluster
}

// round gathers every repository, four at a time.
func (c *monitorCollector) round(ctx context.Context, repos []Monitored) {
	log := zerolog.Ctx(ctx)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, r := range repos {
		g.Go(func() error {
			s, err := r.Gather(gctx)
			if err == nil && s.Error != "" {
				err = errString(s.Error)
			}
			c.mu.Lock()
			st := c.last[r.Name]
			st.up = err == nil
			if err == nil {
				st.success, st.status = c.now(), s
			}
			c.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				log.Warn().Str("cluster", r.Name).Err(err).Msg("monitored repository unreadable")
			}
			return nil
		})
	}
	_ = g.Wait() // the goroutines return nil
}

type errString string

func (e errString) Error() string { return string(e) }

var (
	descMonUp       = prometheus.NewDesc("pitr_monitor_up", "1 if the monitored repository was read in the last round.", []string{"cluster"}, nil)
	descMonSuccess  = prometheus.NewDesc("pitr_monitor_last_success_timestamp_seconds", "Unix time the monitored repository was last read (0: never).", []string{"cluster"}, nil)
	descMonBackup   = prometheus.NewDesc("pitr_backup_newest_timestamp_seconds", "Unix time the newest usable base backup ended (0: none).", []string{"cluster"}, nil)
	descMonBackups  = prometheus.NewDesc("pitr_backups", "Base backups in the repository that are usable.", []string{"cluster"}, nil)
	descMonWAL      = prometheus.NewDesc("pitr_wal_newest_timestamp_seconds", "Unix time the newest WAL was stored (0: none); now minus this is the current RPO.", []string{"cluster"}, nil)
	descMonGaps     = prometheus.NewDesc("pitr_wal_gaps", "Missing WAL segments with later WAL stored after them.", []string{"cluster"}, nil)
	descMonVerify   = prometheus.NewDesc("pitr_verify_last_timestamp_seconds", "Unix time the last pitr verify ended.", []string{"cluster"}, nil)
	descMonVerifyOK = prometheus.NewDesc("pitr_verify_last_ok", "1 if the last pitr verify passed.", []string{"cluster"}, nil)
	descMonDrill    = prometheus.NewDesc("pitr_drill_last_timestamp_seconds", "Unix time the last restore drill ended.", []string{"cluster"}, nil)
	descMonDrillOK  = prometheus.NewDesc("pitr_drill_last_ok", "1 if the last restore drill passed.", []string{"cluster"}, nil)
	// Not pitr_drill_last_rto_seconds: a daemon running drills itself
	// exports that, unlabelled, in the same registry.
	descMonRTO     = prometheus.NewDesc("pitr_drill_rto_seconds", "Time to restore measured by the monitored repository's last restore drill that passed.", []string{"cluster"}, nil)
	descMonCopyLag = prometheus.NewDesc("pitr_copy_lag_seconds", "How long the off-site repository has lacked something of the primary (0: up to date).", []string{"cluster"}, nil)
	descMonDump    = prometheus.NewDesc("pitr_dump_newest_timestamp_seconds", "Unix time the newest dump of a database ended.", []string{"cluster", "db"}, nil)
	descMonFiles   = prometheus.NewDesc("pitr_files_newest_timestamp_seconds", "Unix time the newest snapshot of a file set ended.", []string{"cluster", "set"}, nil)
)

func (c *monitorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMonUp, descMonSuccess, descMonBackup, descMonBackups, descMonWAL, descMonGaps,
		descMonVerify, descMonVerifyOK, descMonDrill, descMonDrillOK, descMonRTO, descMonCopyLag, descMonDump, descMonFiles} {
		ch <- d
	}
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *monitorCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, st := range c.last {
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
		}
		gauge(descMonUp, boolValue(st.up))
		gauge(descMonSuccess, unix(st.success))
		s := st.status
		if s == nil {
			continue
		}
		var newest time.Time
		usable := 0
		if b := s.NewestBackup(); b != nil {
			newest = b.EndTime
		}
		for _, b := range s.Backups {
			if b.Usable {
				usable++
			}
		}
		gauge(descMonBackup, unix(newest))
		gauge(descMonBackups, float64(usable))
		var walAt time.Time
		if s.WAL.NewestTime != nil {
			walAt = *s.WAL.NewestTime
		}
		gauge(descMonWAL, unix(walAt))
		gauge(descMonGaps, float64(len(s.WAL.Gaps)))
		if r := s.Verify; r != nil {
			gauge(descMonVerify, unix(r.Finished))
			gauge(descMonVerifyOK, boolValue(r.OK))
		}
		if r := s.Drill; r != nil {
			gauge(descMonDrill, unix(r.Finished))
			gauge(descMonDrillOK, boolValue(r.OK))
			if r.OK && r.RTOSeconds > 0 {
				gauge(descMonRTO, r.RTOSeconds)
			}
		}
		if o := s.Offsite; o != nil && o.Error == "" {
			// The lag as of the last round, plus the time since: a
			// copy that stopped keeps growing between rounds.
			lag := o.LagSeconds
			if lag > 0 {
				lag += c.now().Sub(s.Checked).Seconds()
			}
			gauge(descMonCopyLag, lag)
		}
		for _, d := range s.Dumps {
			if d.ID != "" {
				gauge(descMonDump, unix(d.EndTime), d.Name)
			}
		}
		for _, f := range s.FileSets {
			if f.ID != "" {
				gauge(descMonFiles, unix(f.EndTime), f.Name)
			}
		}
	}
}
