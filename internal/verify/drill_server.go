package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/pgserver"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/restore"
	"github.com/pitr-dev/pitr/internal/scratch"
)

// drillServerSettings are given to the restored copy's server on its
// command line, where they override every configuration file:
//   - archive_mode off: the copy never archives into any repository, so
//     the timeline its promotion creates stays in the scratch directory;
//   - no logical replication workers: a copy of a subscriber must not
//     connect to the publisher and consume from its slot;
//   - no synchronous standbys: commits (CREATE EXTENSION amcheck) would
//     wait for production's standbys forever;
//   - log to stderr (the scratch server log), no SSL (only a private unix
//     socket is used), writable transactions for CREATE EXTENSION;
//   - no external_pid_file: production's must not be overwritten;
//   - no recovery_end_command: the restore disables one in
//     postgresql.auto.conf only, and it may act on production's archive.
//
// openServer adds data_directory (a restored postgresql.conf naming
// production's data directory must not send the server there), and
// hba_file and ident_file: trust on the unix socket only, whose directory
// only the server's user may enter.
var drillServerSettings = map[string]string{
	"archive_mode":                    "off",
	"max_logical_replication_workers": "0",
	"synchronous_standby_names":       "",
	"logging_collector":               "off",
	"ssl":                             "off",
	"default_transaction_read_only":   "off",
	"external_pid_file":               "",
	"recovery_end_command":            "",
}

// drillCannotConnectNow is SQLSTATE cannot_connect_now: "the database
// system is starting up", while recovery runs without hot standby.
const drillCannotConnectNow = "57P03"

// drillPoll is how often the drill looks at a recovering server.
const drillPoll = 200 * time.Millisecond

// database restores the backup, checks it with pg_verifybackup, starts it
// and runs pg_amcheck and the SQL checks; the server is stopped and its
// directories removed before it returns.
func (d *drill) database(ctx context.Context) {
	o, res := d.opts, d.res
	log := zerolog.Ctx(ctx)
	dataDir := d.scratchPath("pgdata")
	if err := restore.Preflight(ctx, restore.PreflightOptions{DataDir: dataDir, Read: o.CommandReads, Exec: o.CommandExecs}); err != nil {
		d.problem("restore: %v", err)
		return
	}
	plan, err := restore.Choose(ctx, o.Repo, o.Target, "", o.Timeline)
	if err != nil {
		d.problem("restore: %v", err)
		return
	}
	b := plan.Backup
	res.Backup = b.ID
	// Tablespaces go into the scratch directory too, never to their
	// production locations.
	tsMap := map[string]string{}
	if len(b.Tablespaces) > 0 {
		if err := d.mkdir("tablespaces"); err != nil {
			d.problem("restore: %v", err)
			return
		}
		for _, ts := range b.Tablespaces {
			tsMap[ts.Location] = d.scratchPath("tablespaces", strconv.FormatUint(uint64(ts.OID), 10))
		}
	}
	start := o.Now()
	bar := d.meter("drill: restore")
	_, err = restore.Run(ctx, restore.Options{
		Repo: o.Repo, Target: o.Target, BackupID: b.ID, DataDir: dataDir, TablespaceMap: tsMap,
		RestoreCommand: o.RestoreCommand, Timeline: o.Timeline, ArchiveOff: true, Now: o.Now, Progress: bar,
	})
	progress.Done(bar)
	if err != nil {
		d.problem("restore backup %s: %v", b.ID, err)
		return
	}
	unpacked := o.Now().Sub(start)
	log.Info().Str("backup", b.ID).Dur("took", unpacked).Msg("drill: backup unpacked")

	d.verifyBackup(ctx, dataDir, len(b.Tablespaces) > 0)

	c, err := d.openServer(dataDir)
	if err != nil {
		d.problem("start server: %v", err)
		return
	}
	defer func() {
		if err := c.Remove(); err != nil {
			d.problem("stop server: %v", err)
		}
	}()
	started := o.Now()
	if err := c.Start(ctx); err != nil {
		d.problem("start server: %v", err)
		return
	}
	if !d.waitPromoted(ctx, c) {
		return
	}
	res.RTO = unpacked + o.Now().Sub(started)
	log.Info().Float64("rto_seconds", res.RTO.Seconds()).Msg("drill: server accepts connections")
	q := &drillConn{c: c, user: o.User}
	if err := d.reached(ctx, q); err != nil {
		d.problem("read the point recovery reached: %v", err)
	}
	d.amcheck(ctx, q)
	d.sqlChecks(ctx, q)
}

// mkdir makes a directory in the scratch directory for the server's user.
func (d *drill) mkdir(name string) error {
	p := d.scratchPath(name)
	if err := os.Mkdir(p, 0o700); err != nil {
		return err
	}
	return scratch.ChownToPostgres(p)
}

// openServer prepares the restored copy's server: its own hba and ident
// files, a postgresql.conf if the backup had none (Debian keeps it in
// /etc), and a socket directory only the server's user may enter.
func (d *drill) openServer(dataDir string) (*scratch.Cluster, error) {
	settings := map[string]string{"data_directory": dataDir}
	for k, v := range drillServerSettings {
		settings[k] = v
	}
	for name, content := range map[string]string{"hba_file": "local all all trust\n", "ident_file": ""} {
		p := d.scratchPath("pg_" + strings.TrimSuffix(name, "_file") + ".conf")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return nil, err
		}
		if err := scratch.ChownToPostgres(p); err != nil {
			return nil, err
		}
		settings[name] = p
	}
	conf := filepath.Join(dataDir, pgserver.Conf)
	if _, err := os.Lstat(conf); errors.Is(err, os.ErrNotExist) {
		fi, err := os.Stat(dataDir)
		if err != nil {
			return nil, err
		}
		if err := pgserver.WriteFile(conf, nil, 0o600, fi); err != nil {
			return nil, err
		}
	}
	c := scratch.Open(scratch.Options{BinDir: d.opts.BinDir, Dir: d.scratchPath("server"), Settings: settings, Env: d.opts.Env}, dataDir)
	if c.SocketDir != "" {
		if err := os.Chmod(c.SocketDir, 0o700); err != nil {
			_ = c.Remove()
			return nil, err
		}
	}
	return c, nil
}

// waitPromoted waits until recovery has ended and the copy runs read-write;
// false means it did not (a problem was noted) or ctx ended.
func (d *drill) waitPromoted(ctx context.Context, c *scratch.Cluster) bool {
	q := &drillConn{c: c, user: d.opts.User}
	tick := time.NewTicker(drillPoll)
	defer tick.Stop()
	for {
		var inRecovery bool
		err := q.row(ctx, "template1", `SELECT pg_is_in_recovery()`, &inRecovery)
		if err == nil && !inRecovery {
			return true
		}
		// The server answered, and not with "starting up": a missing role
		// or database, or authentication, will not pass by waiting.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != drillCannotConnectNow {
			d.problem("connect to the restored server as %s: %v", d.opts.User, err)
			return false
		}
		if !c.Running() {
			d.problem("recovery failed: server exited; server log: %s", drillLogTail(c.LogPath(), 20))
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// reached reads where recovery ended: these functions keep their values
// after recovery has ended (see
// https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-RECOVERY-INFO-TABLE).
func (d *drill) reached(ctx context.Context, q *drillConn) error {
	var at *time.Time
	var lsn, walfile string
	err := q.row(ctx, "template1", `SELECT pg_last_xact_replay_timestamp(), coalesce(pg_last_wal_replay_lsn()::text, ''), pg_walfile_name(pg_current_wal_lsn())`, &at, &lsn, &walfile)
	if err != nil {
		return err
	}
	if at != nil {
		d.res.Reached = at.UTC()
	}
	d.res.ReachedLSN = lsn
	if tli, err := strconv.ParseUint(walfile[:min(8, len(walfile))], 16, 32); err == nil {
		d.res.Timeline = uint32(tli)
	}
	return nil
}

// verifyBackup runs pg_verifybackup on the unpacked directory before the
// server starts, with --no-parse-wal: recovery fetches the WAL from the
// archive, none is in pg_wal. It ignores postgresql.auto.conf and
// recovery.signal, which the restore wrote, by itself; with tablespaces,
// pg_tblspc is ignored too (their links appear only when the server
// starts). See https://www.postgresql.org/docs/15/app-pgverifybackup.html
func (d *drill) verifyBackup(ctx context.Context, dataDir string, tablespaces bool) {
	if _, err := os.Stat(filepath.Join(dataDir, "backup_manifest")); err != nil {
		d.res.VerifyBackup = "skipped (the backup has no backup_manifest)"
		return
	}
	bin, err := scratch.FindBinDir(d.opts.BinDir, dataDir)
	if err != nil {
		d.problem("pg_verifybackup: %v", err)
		return
	}
	owner, err := pgserver.OwnerOf(dataDir)
	if err != nil {
		d.problem("pg_verifybackup: %v", err)
		return
	}
	args := []string{"--no-parse-wal", "--quiet"}
	if tablespaces {
		args = append(args, "--ignore", "pg_tblspc")
	}
	out, err := owner.Command(ctx, dataDir, nil, filepath.Join(bin, "pg_verifybackup"), append(args, dataDir)...).CombinedOutput()
	if err != nil {
		if ctx.Err() == nil {
			d.problem("pg_verifybackup: %v: %s", err, drillLimitLines(string(out), 10))
		}
		return
	}
	d.res.VerifyBackup = "ok"
}

// amcheck creates the amcheck extension in every database of the copy
// (this writes to the copy only) and runs pg_amcheck --all on them:
// tables and B-tree indexes, without --heapallindexed (much slower).
func (d *drill) amcheck(ctx context.Context, q *drillConn) {
	dbs, err := q.strings(ctx, "template1", `SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname`)
	if err != nil {
		d.problem("amcheck: list databases: %v", err)
		return
	}
	for _, db := range dbs {
		if err := q.exec(ctx, db, `CREATE EXTENSION IF NOT EXISTS amcheck`); err != nil {
			d.problem("amcheck: database %s: create extension amcheck: %v", db, err)
			return
		}
	}
	d.res.Databases = dbs
	cmd := q.c.Command(ctx, "pg_amcheck", "--all", "--host", q.c.SocketDir, "--port", strconv.Itoa(q.c.Port),
		"--username", q.user, "--jobs", "2")
	cmd.Env = append(cmd.Env, "PGOPTIONS=-c statement_timeout=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		var ee *exec.ExitError
		what := "failed"
		if errors.As(err, &ee) && ee.ExitCode() == 2 {
			what = "found corruption"
		}
		d.problem("amcheck: pg_amcheck %s (%v): %s", what, err, drillLimitLines(string(out), 10))
		return
	}
	d.res.AmcheckOK = true
}

// sqlChecks runs the configured checks, each in a read-only transaction.
func (d *drill) sqlChecks(ctx context.Context, q *drillConn) {
	for _, c := range d.opts.Checks {
		d.res.Checks++
		got, ok, err := q.check(ctx, c)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			d.problem("check %s: %v", c, err)
		case !ok:
			d.problem("check %s: %s", c, got)
		default:
			d.res.ChecksOK++
		}
	}
}

// drillJudge decides a check from the first column of its first row:
// a number must be at least min; anything else but NULL passes (a row
// came back). It returns what was found, as a problem would say it.
func drillJudge(v any, min int64) (string, bool) {
	var f float64
	switch x := v.(type) {
	case nil:
		return "returned NULL", false
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case int16:
		f = float64(x)
	case int8:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case float64:
		f = x
	case float32:
		f = float64(x)
	case pgtype.Numeric:
		fv, err := x.Float64Value()
		if err != nil || !fv.Valid {
			return "returned a number pitr cannot read", false
		}
		f = fv.Float64
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil || math.IsNaN(n) {
			return fmt.Sprintf("returned %q", drillAbbrev(x, 40)), true
		}
		f = n
	default:
		return fmt.Sprintf("returned a %T", v), true
	}
	shown := strconv.FormatFloat(f, 'f', -1, 64)
	if f < float64(min) {
		return fmt.Sprintf("returned %s, want at least %d", shown, min), false
	}
	return "returned " + shown, true
}

// drillConn connects to the copy over its private unix socket.
type drillConn struct {
	c    *scratch.Cluster
	user string
}

func (q *drillConn) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	dsn := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable connect_timeout=10",
		drillDSNQuote(q.c.SocketDir), q.c.Port, drillDSNQuote(q.user), drillDSNQuote(db))
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s: %w", db, err)
	}
	return conn, nil
}

func (q *drillConn) row(ctx context.Context, db, sql string, dst ...any) error {
	conn, err := q.connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql).Scan(dst...)
}

func (q *drillConn) exec(ctx context.Context, db, sql string) error {
	conn, err := q.connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

func (q *drillConn) strings(ctx context.Context, db, sql string) ([]string, error) {
	conn, err := q.connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// check runs one SQL check read-only and judges its first value.
func (q *drillConn) check(ctx context.Context, c DrillCheck) (string, bool, error) {
	conn, err := q.connect(ctx, c.DB)
	if err != nil {
		return "", false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return "", false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // read-only: nothing to keep
	rows, err := tx.Query(ctx, c.SQL)
	if err != nil {
		return "", false, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", false, err
		}
		return "returned no rows", false, nil
	}
	vals, err := rows.Values()
	if err != nil {
		return "", false, err
	}
	if len(vals) == 0 {
		return "returned no columns", false, nil
	}
	got, ok := drillJudge(vals[0], c.Min)
	return got, ok, nil
}

// drillDSNQuote quotes a libpq keyword/value connection string value.
func drillDSNQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// drillLogTail returns the last n lines of a server log, on one line.
func drillLogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return drillOneLine(scratch.LastLines(string(b), n))
}

// drillLimitLines keeps the first n lines of a tool's output, on one line.
func drillLimitLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("(%d more lines)", len(lines)-n))
	}
	return drillOneLine(strings.Join(lines, "\n"))
}

func drillAbbrev(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}
