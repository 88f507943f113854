package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/backup"
	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/daemon"
	"github.com/pitr-dev/pitr/internal/dump"
	"github.com/pitr-dev/pitr/internal/files"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/wal/archive"
)

func newDaemonCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "daemon",
		Short: "Stream WAL, and take base backups and dumps on schedules, in one process with metrics",
		Long: `Run wal-receive (daemon_stream), base backups on backup_schedule, dumps
of dump_databases on dump_schedule, and snapshots of each file set (files:)
on its schedule, else files_schedule, and app points of each application
(apps:) that has a schedule, in one process. Schedules are cron lines in
local time ("0 2 * * *", a leading seconds field, or @daily, @every 6h); an
empty schedule disables the job. A run still going when its job is due again
skips that turn; a failed run is retried after daemon_retry_backoff, doubling
up to an hour. /metrics (Prometheus) and /healthz are served on metrics_addr;
/healthz answers 503 when storage has failed, or streamed WAL waited to be
stored, for longer than store_max_outage.
SIGTERM stops streaming after storing what it has and cancels a running backup
or dump (an interrupted one is never listed), then exits 0.
With a monitor: section, it also reads each listed repository's state every
minute and exports it in /metrics, labelled cluster; with monitor: and no repo
(a monitoring host), that is all it does.
It listens on the unix socket socket (unless off) and pushes WAL for
pitr wal-push there, with look-ahead at other .ready files (push_concurrency).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runDaemon(c.Context(), e) },
	}
}

func runDaemon(ctx context.Context, e *env) error {
	residentGC()
	if e.cfg.Repo == "" && len(e.cfg.Monitor) > 0 { // a monitoring host: monitor: only
		return runMonitorDaemon(ctx, e)
	}
	r, err := e.WritableRepo(ctx)
	if err != nil {
		return err
	}
	st := r.Store()
	mon := daemon.NewStoreMonitor(st, nil)
	r, e.store = r.WithStore(mon), mon // the receiver, backups and dumps all go through it
	opts := daemon.Options{
		RetryBackoff: e.cfg.DaemonRetryBackoff, MetricsAddr: e.cfg.MetricsAddr, Version: version,
		Store: mon, StoreMaxOutage: e.cfg.StoreMaxOutage,
	}
	// The off-site copy runs after each successful job (and once at
	// start, to catch up), one at a time; a nil offsite ignores Kick.
	offsite, err := e.CopyOffsite(ctx, mon)
	if err != nil {
		return err
	}
	if offsite != nil {
		opts.Jobs = append(opts.Jobs, daemon.Job{Name: "offsite copy", Run: func(ctx context.Context, _ bool) error {
			return withJobMemory(func() error { return offsite.Run(ctx) })
		}})
		offsite.Kick()
	}
	if j := pushSocketJob(e, r); j != nil { // issue 13: wal-push hands WAL to the daemon
		opts.Jobs = append(opts.Jobs, *j)
	}
	retainer := daemonRetainer(e, r) // nil without a policy or with daemon_retain off
	if retainer != nil {
		opts.Jobs = append(opts.Jobs, retainer.Job())
	}
	if e.cfg.DaemonStream == nil || *e.cfg.DaemonStream {
		r, err := newReceiver(ctx, e)
		if err != nil {
			return err
		}
		opts.Jobs = append(opts.Jobs, daemon.ReceiverJob(r))
	}
	backupSchedule, err := config.ParseSchedule(e.cfg.BackupSchedule)
	if err != nil {
		return fmt.Errorf("%w: backup_schedule: %v", errUsage, err)
	}
	dumpSchedule, err := config.ParseSchedule(e.cfg.DumpSchedule)
	if err != nil {
		return fmt.Errorf("%w: dump_schedule: %v", errUsage, err)
	}
	if backupSchedule != nil {
		opts.Jobs = append(opts.Jobs, daemon.BackupJob(backupSchedule, func(ctx context.Context) error {
			err := withJobMemory(func() error {
				_, err := backup.Run(ctx, backup.Options{
					Repo: r, DSN: e.cfg.PGDSN.Reveal(), Fast: true,
					WALTimeout: e.cfg.BackupWALTimeout, StaleAfter: e.cfg.BackupStaleAfter, PitrVersion: version,
					Method: e.cfg.BackupMethod,
				})
				return err
			})
			if err == nil {
				offsite.Kick()
				retainer.Kick()
			}
			return err
		}))
	}
	if dumpSchedule != nil && len(e.cfg.DumpDatabases) > 0 {
		// The globals (roles, tablespaces) once per run, as one more "database".
		dbs := e.cfg.DumpDatabases
		if e.cfg.DumpGlobals == nil || *e.cfg.DumpGlobals {
			dbs = append(append([]string{}, dbs...), catalog.GlobalsDatabase)
		}
		opts.Jobs = append(opts.Jobs, daemon.DumpJob(dumpSchedule, dbs, func(ctx context.Context, db string) error {
			take := dump.Run
			if db == catalog.GlobalsDatabase {
				take = dump.Globals
			}
			err := withJobMemory(func() error {
				_, err := take(ctx, dump.Options{Repo: r, DSN: e.cfg.PGDSN.Reveal(), Database: db, PitrVersion: version})
				return err
			})
			if err == nil {
				offsite.Kick()
				retainer.Kick()
			}
			return err
		}))
	}
	for _, set := range e.cfg.Files { // each file set on its own schedule, else files_schedule
		spec := cmp.Or(set.Schedule, e.cfg.FilesSchedule)
		s, err := config.ParseSchedule(spec)
		if err != nil {
			return fmt.Errorf("%w: files %s schedule: %v", errUsage, set.Name, err)
		}
		if s != nil {
			opts.Jobs = append(opts.Jobs, daemon.Job{Name: "files " + set.Name, Schedule: s, Run: func(ctx context.Context, _ bool) error {
				err := withJobMemory(func() error { _, err := filesBackup(ctx, e, r, set, false, nil); return err })
				if err == nil || errors.Is(err, files.ErrChanged) { // stored either way
					offsite.Kick()
					retainer.Kick()
				}
				return err
			}})
		}
	}
	for _, a := range e.cfg.Apps { // issue 12: each app with a schedule, as "app <name>"
		if s, err := config.ParseSchedule(a.Schedule); err != nil {
			return fmt.Errorf("%w: app %s schedule: %v", errUsage, a.Name, err)
		} else if s != nil {
			opts.Jobs = append(opts.Jobs, daemon.Job{Name: "app " + a.Name, Schedule: s, Run: func(ctx context.Context, _ bool) error {
				err := withJobMemory(func() error { _, err := appBackup(ctx, e, r, a); return err })
				if err == nil {
					offsite.Kick()
					retainer.Kick()
				}
				return err
			}})
		}
	}
	if j, err := drillJob(ctx, e); err != nil { // drill.schedule: restore drills
		return err
	} else if j != nil {
		opts.Jobs = append(opts.Jobs, *j)
	}
	opts.Previous = func(ctx context.Context) (daemon.Previous, error) {
		var p daemon.Previous
		l, err := r.ListBackups(ctx)
		if err != nil {
			return p, err
		}
		backups := l.Intact() // damaged entries and backups missing a part do not count
		if n := len(backups); n > 0 {
			b := backups[n-1]
			p.BackupEnd, p.BackupDuration = b.EndTime, b.EndTime.Sub(b.StartTime)
		}
		dumps, _, err := r.ListDumps(ctx, "")
		if err != nil {
			return p, err
		}
		p.Dumps = map[string]time.Time{}
		for _, d := range dumps {
			p.Dumps[d.Database] = d.EndTime // oldest first: the newest wins
		}
		return p, nil
	}
	if j, err := e.monitorJob(); err != nil || j != nil { // monitor: too
		if err != nil {
			return err
		}
		opts.Jobs = append(opts.Jobs, *j)
	}
	return daemon.Run(ctx, opts)
}

// pushSocketJob serves wal-push on the socket setting's path with the
// daemon's store; nil when off, or when the socket cannot be made (wal-push
// then pushes in-process, as without a daemon: logged, not fatal).
func pushSocketJob(e *env, r *repo.Repo) *daemon.Job {
	if e.cfg.Socket == "off" {
		return nil
	}
	ln, err := archive.Listen(e.cfg.Socket)
	if err != nil {
		e.log.Warn().Err(err).Msg("not serving wal-push: it pushes in-process")
		return nil
	}
	srv := archive.NewServer(archive.ServerOptions{Push: archive.PushOptions{
		Store: r.Store(), Codec: r.Codec(), SpoolDir: e.cfg.SpoolDir, Concurrency: e.cfg.PushConcurrency,
		RepoID: e.cfg.Repo, Version: version,
	}})
	j := daemon.PushSocketJob(func(ctx context.Context) error { return srv.ServePath(ctx, ln, e.cfg.Socket) },
		func() daemon.PushSocketStats { return daemon.PushSocketStats(srv.Stats()) })
	return &j
}
