// Package daemon runs pitr's long-lived parts in one process, under one
// errgroup: a list of jobs (the WAL receiver, which runs throughout, and
// base backups and logical dumps on cron schedules; a new kind of job is
// one more entry), and an HTTP server for Prometheus metrics and a health
// check.
//
// Scheduling: each job has its own loop. A run still going when the job is
// due again skips that turn (logged, pitr_job_skipped_total). A failed run
// is retried after daemon_retry_backoff, doubling up to an hour, unless the
// next scheduled run comes first; a failed dump run retries only the
// databases that failed.
//
// Shutdown (ctx cancelled, i.e. SIGTERM): the receiver stores what it has
// and returns; a running backup or dump sees its context cancelled and
// returns (its entry is written last, so an interrupted one is never
// listed); Run waits up to Options.ShutdownGrace for that, then returns
// nil, or an error if a job did not stop in time.
//
// /healthz answers 200 "ok" unless: storage requests have kept failing
// for longer than Options.StoreMaxOutage (the reason names the kind of
// error, the last success and how long streamed WAL has waited); the
// receiver (when streaming is on) is not connected; WAL the server flushed
// has waited longer than StoreMaxOutage to be stored; or backups are
// scheduled and the newest one ended longer ago than twice the schedule's
// interval (measured between its next two runs; 48h for a daily schedule),
// with no backup yet counted from the daemon's start. Otherwise it answers
// 503 with the reason in one line.
//
// The store's state comes from a StoreMonitor around the Storage the
// receiver and jobs use (pitr_store_* metrics). An idle store (no request
// for StoreProbeInterval) is probed with a Stat of the repository marker,
// so an outage shows between scheduled runs too.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/wal/stream"
)

// Receiver is what the daemon needs of a stream.Receiver.
type Receiver interface {
	Run(ctx context.Context) error
	Status() stream.Status
}

// Previous is what the repository already holds, for the metrics and the
// health check of a daemon that just started.
type Previous struct {
	BackupEnd      time.Time // zero: no backup
	BackupDuration time.Duration
	Dumps          map[string]time.Time // database -> end of its newest dump
}

// Job is one entry in the daemon's list of jobs. A job with a Schedule
// runs on it (no overlap with itself, retries with backoff); one without,
// such as the WAL receiver, is started once and runs as long as the
// daemon, and its failing stops the daemon. Scheduled jobs are counted by
// name in the pitr_job_* metrics; ReceiverJob, BackupJob and DumpJob also
// feed their own metrics and /healthz.
type Job struct {
	Name     string   // the "job" label and log field; unique
	Schedule Schedule // nil: long-running
	// Run does one run; retry says it repeats a failed run rather than
	// being a scheduled one. A long-running job's Run returns when ctx
	// ends, or with an error when it fails for good.
	Run func(ctx context.Context, retry bool) error

	receiver Receiver // ReceiverJob: pitr_stream_* and /healthz follow it
	noRetry  bool     // DrillJob: a failed run waits for the next scheduled one
	backup   bool     // BackupJob: /healthz checks the newest backup's age
	// pushStats: PushSocketJob's counters, exported as metrics.
	pushStats func() PushSocketStats
	// bind, if set, gives Run the daemon's metrics and clock (BackupJob,
	// DumpJob record what they stored).
	bind func(m *metrics, now func() time.Time) func(ctx context.Context, retry bool) error
}

// ReceiverJob streams WAL with r for as long as the daemon runs.
func ReceiverJob(r Receiver) Job {
	return Job{Name: "wal receiver", Run: func(ctx context.Context, _ bool) error { return r.Run(ctx) }, receiver: r}
}

// BackupJob takes base backups on s; a success sets
// pitr_last_backup_success_timestamp_seconds and its duration.
func BackupJob(s Schedule, backup func(ctx context.Context) error) Job {
	return Job{Name: "backup", Schedule: s, backup: true,
		bind: func(m *metrics, now func() time.Time) func(context.Context, bool) error {
			return func(ctx context.Context, _ bool) error {
				start := now()
				if err := backup(ctx); err != nil {
					return err
				}
				end := now()
				m.backupDone(end, end.Sub(start))
				return nil
			}
		}}
}

// DumpJob dumps each of databases in turn on s; a retry redoes only those
// that failed. Each success sets
// pitr_last_dump_success_timestamp_seconds{db}.
func DumpJob(s Schedule, databases []string, dump func(ctx context.Context, db string) error) Job {
	return Job{Name: "dump", Schedule: s,
		bind: func(m *metrics, now func() time.Time) func(context.Context, bool) error {
			return dumpRun(databases, dump, now, m)
		}}
}

// Options configures Run.
type Options struct {
	Jobs []Job

	RetryBackoff  time.Duration // first retry delay; default 1m
	MaxBackoff    time.Duration // default 1h, or RetryBackoff if longer
	ShutdownGrace time.Duration // default 30s

	// MetricsAddr is where /metrics and /healthz are served; "" disables.
	MetricsAddr string
	// Listening, if set, is told the address the server listens on (for
	// port 0).
	Listening func(addr string)
	// BackupMaxAge overrides the health check's limit (default: twice the
	// backup schedule's interval).
	BackupMaxAge time.Duration
	// Previous, if set, is asked once at start for the newest backup and
	// dumps; an error is logged and otherwise ignored.
	Previous func(ctx context.Context) (Previous, error)
	Version  string
	Now      func() time.Time

	// Store, if set, wraps the Storage the receiver and jobs were given;
	// its state is reported and it is probed when idle.
	Store *StoreMonitor
	// StoreMaxOutage is how long storage requests may keep failing, and
	// flushed WAL wait to be stored, before /healthz answers 503; default
	// 1m.
	StoreMaxOutage time.Duration
	// StoreProbeInterval is how long the store may stay idle before it is
	// probed; default StoreMaxOutage/4, at most 15s.
	StoreProbeInterval time.Duration
}

// Run runs until ctx ends or a part fails for good (the receiver meeting
// an error reconnecting cannot fix, the HTTP server failing).
func Run(ctx context.Context, opts Options) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = time.Minute
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = max(time.Hour, opts.RetryBackoff)
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 30 * time.Second
	}
	if opts.StoreMaxOutage <= 0 {
		opts.StoreMaxOutage = time.Minute
	}
	if opts.StoreProbeInterval <= 0 {
		opts.StoreProbeInterval = min(15*time.Second, max(100*time.Millisecond, opts.StoreMaxOutage/4))
	}
	log := zerolog.Ctx(ctx)
	var receiver Receiver
	var scheduled, longRunning []*job
	var backupSchedule Schedule
	names := map[string]bool{}
	for _, j := range opts.Jobs {
		switch {
		case j.Name == "" || j.Run == nil && j.bind == nil:
			return errors.New("daemon: a job needs a name and a run function")
		case names[j.Name]:
			return fmt.Errorf("daemon: two jobs named %q", j.Name)
		case j.receiver != nil && receiver != nil:
			return errors.New("daemon: more than one wal receiver")
		}
		names[j.Name] = true
		if j.receiver != nil {
			receiver = j.receiver
		}
		if j.backup && j.Schedule != nil {
			backupSchedule = j.Schedule
		}
		jj := &job{name: j.Name, schedule: j.Schedule, fn: j.Run, bind: j.bind, noRetry: j.noRetry}
		if j.Schedule == nil {
			longRunning = append(longRunning, jj)
		} else {
			scheduled = append(scheduled, jj)
		}
	}
	var status func() stream.Status
	if receiver != nil {
		status = receiver.Status
	}
	var storeStatus func() StoreStatus
	if opts.Store != nil {
		storeStatus = opts.Store.Status
	}
	m := newMetrics(opts.Now, opts.Version, status, storeStatus)
	for _, j := range opts.Jobs {
		if j.pushStats != nil {
			m.reg.MustRegister(pushSocketCollector{j.pushStats})
		}
	}
	if opts.Previous != nil {
		prev, err := opts.Previous(ctx)
		if err != nil {
			log.Warn().Err(err).Msg("could not read the newest backup and dumps from the repository")
		}
		if !prev.BackupEnd.IsZero() {
			m.backupDone(prev.BackupEnd, prev.BackupDuration)
		}
		for db, end := range prev.Dumps {
			m.dumpDone(db, end)
		}
	}
	for _, j := range append(scheduled, longRunning...) {
		if j.bind != nil {
			j.fn = j.bind(m, opts.Now)
		}
	}
	for _, j := range scheduled {
		j.backoff, j.maxBackoff, j.grace, j.hooks = opts.RetryBackoff, opts.MaxBackoff, opts.ShutdownGrace, m.hooks(j.name)
	}

	var srv *http.Server
	var ln net.Listener
	if opts.MetricsAddr != "" {
		var err error
		if ln, err = net.Listen("tcp", opts.MetricsAddr); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		h := health{status: status, store: storeStatus, storeMaxOutage: opts.StoreMaxOutage}
		if backupSchedule != nil {
			h.backupMaxAge = opts.BackupMaxAge
			if h.backupMaxAge <= 0 {
				h.backupMaxAge = 2 * interval(backupSchedule, opts.Now())
			}
		}
		srv = &http.Server{Handler: m.handler(h), ReadHeaderTimeout: 10 * time.Second}
		log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics and /healthz")
		if opts.Listening != nil {
			opts.Listening(ln.Addr().String())
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, j := range longRunning {
		g.Go(func() error {
			if err := j.fn(gctx, false); err != nil {
				return fmt.Errorf("%s: %w", j.name, err)
			}
			return nil
		})
	}
	for _, j := range scheduled {
		g.Go(func() error { return j.run(gctx) })
	}
	if opts.Store != nil {
		g.Go(func() error { watchStore(gctx, opts); return nil })
	}
	if srv != nil {
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	log.Info().Bool("stream", receiver != nil).Strs("jobs", jobNames(scheduled)).Msg("daemon started")
	err := g.Wait()
	if err == nil {
		log.Info().Msg("daemon stopped")
	}
	return err
}

func jobNames(jobs []*job) []string {
	out := []string{}
	for _, j := range jobs {
		out = append(out, j.name)
	}
	return out
}

// interval is the time between a schedule's next two runs after now.
func interval(s Schedule, now time.Time) time.Duration {
	a := s.Next(now)
	b := s.Next(a)
	if a.IsZero() || b.IsZero() {
		return 0
	}
	return b.Sub(a)
}

// dumpRun dumps every database in turn; a retry redoes only those that
// failed.
func dumpRun(databases []string, dump func(context.Context, string) error, now func() time.Time, m *metrics) func(context.Context, bool) error {
	var pending []string
	return func(ctx context.Context, retry bool) error {
		if !retry || len(pending) == 0 {
			pending = append([]string(nil), databases...)
		}
		var failed, msgs []string
		total := len(pending)
		for i, db := range pending {
			if ctx.Err() != nil {
				pending = append(failed, pending[i:]...)
				return ctx.Err()
			}
			if err := dump(ctx, db); err != nil {
				failed = append(failed, db)
				msgs = append(msgs, err.Error())
				continue
			}
			m.dumpDone(db, now())
		}
		pending = failed
		if len(failed) > 0 {
			return fmt.Errorf("%d of %d dumps failed: %s", len(failed), total, strings.Join(msgs, "; "))
		}
		return nil
	}
}

// watchStore probes the store when idle and logs when an outage passes
// StoreMaxOutage and when it ends.
func watchStore(ctx context.Context, opts Options) {
	log := zerolog.Ctx(ctx)
	// Long enough for the client's own retries to end with the error
	// that made them (connection refused rather than our timeout).
	timeout := min(10*time.Second, max(5*time.Second, opts.StoreMaxOutage/2))
	t := time.NewTicker(opts.StoreProbeInterval)
	defer t.Stop()
	reported := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-opts.Store.recovered: // said at once, not at the next tick
		case <-t.C:
			opts.Store.probe(ctx, opts.StoreProbeInterval, timeout)
		}
		st := opts.Store.Status()
		switch down := !st.Up() && opts.Now().Sub(st.FailingSince) > opts.StoreMaxOutage; {
		case down && !reported:
			log.Error().Str("kind", st.LastErrorKind).Int64("failures", st.Failures).
				Dur("failing_for", opts.Now().Sub(st.FailingSince).Round(time.Second)).Msg("storage is failing")
			reported = true
		case !down && reported && st.Up():
			log.Info().Msg("storage answers again")
			reported = false
		}
	}
}
