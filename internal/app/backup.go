package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/pg"
	"github.com/pitr-dev/pitr/wal"
)

// ErrWALTimeout is wrapped when the restore point's WAL did not reach the
// repository in time.
var ErrWALTimeout = errors.New("WAL holding the restore point was not archived in time")

// versionTimeout bounds one version command.
const versionTimeout = time.Minute

// maxVersionBytes is the most of a version command's output recorded.
const maxVersionBytes = 1024

// Backup takes one app point: the restore point, its WAL in the
// repository, the before hooks, the file snapshots, the dumps, the after
// hooks, the versions, and the entry last (see doc.go). It returns the
// entry once stored; on error no app point is listed.
func Backup(ctx context.Context, opts Options) (_ *catalog.App, err error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WALTimeout == 0 {
		opts.WALTimeout = 5 * time.Minute
	}
	if !catalog.ValidSetName(opts.App) {
		return nil, fmt.Errorf("app %q: want lower-case letters, digits, _ and -", opts.App)
	}
	if len(opts.Sets) > 0 && opts.Snapshot == nil || len(opts.Dumps) > 0 && opts.Dump == nil {
		return nil, fmt.Errorf("app %s: file sets or dumps without a job to take them", opts.App)
	}
	start := opts.Now().UTC()
	id, resKey, err := opts.Repo.ReserveAppID(ctx, opts.App, start)
	if err != nil {
		return nil, err
	}
	log := zerolog.Ctx(ctx).With().Str("app", opts.App).Str("id", id).Logger()
	ctx = log.WithContext(ctx)
	defer func() {
		if err != nil {
			opts.Repo.ReleaseID(ctx, resKey)
			err = fmt.Errorf("app backup %s: %w", opts.App, err)
		}
	}()
	host, _ := os.Hostname()
	a := &catalog.App{ID: id, Format: catalog.AppFormat, App: opts.App, Host: host, PitrVersion: opts.PitrVersion,
		StartTime: start, Versions: map[string]string{}}

	// The database point first: every file read after it existed when it
	// was taken.
	if opts.Cluster {
		point, version, err := createPoint(ctx, opts, RestorePointName(opts.App, id))
		if err != nil {
			return nil, err
		}
		a.RestorePoint = point
		recordPG(a, version, point.PGVersion)
		log.Info().Str("restore_point", point.Name).Str("lsn", point.LSN).Str("segment", point.WALSegment).Msg("restore point created")
		if err := waitWAL(ctx, opts, point.WALSegment); err != nil {
			return nil, err
		}
		log.Info().Str("segment", point.WALSegment).Msg("restore point archived")
	} else if len(opts.Dumps) > 0 {
		version, num, err := serverVersion(ctx, opts)
		if err != nil {
			return nil, err
		}
		recordPG(a, version, num)
	}

	err = takeParts(ctx, opts, a)
	// After hooks always run once before hooks started: they undo what the
	// before hooks did (unfreeze, resume), also when the backup was
	// cancelled (SIGTERM), each bounded by its own timeout.
	for _, h := range opts.After {
		rec, herr := runHook(context.WithoutCancel(ctx), h, "after")
		a.Hooks = append(a.Hooks, rec)
		if herr != nil && err == nil {
			err = herr
		} else if herr != nil {
			log.Error().Err(herr).Str("hook", h.Name).Msg("after hook failed")
		}
	}
	if err != nil {
		return nil, err
	}
	for _, v := range opts.Versions {
		a.Versions[v.Name] = runVersion(ctx, v)
	}
	a.EndTime = opts.Now().UTC()
	if err := opts.Repo.SaveApp(ctx, a); err != nil {
		return nil, err
	}
	log.Info().Int("snapshots", len(a.Snapshots)).Int("dumps", len(a.Dumps)).Msg("app point stored")
	return a, nil
}

// takeParts runs the before hooks, then snapshots each set and takes each
// dump, in order, then the globals; the first failure ends it.
func takeParts(ctx context.Context, opts Options, a *catalog.App) error {
	for _, h := range opts.Before {
		rec, err := runHook(ctx, h, "before")
		a.Hooks = append(a.Hooks, rec)
		if err != nil {
			return err
		}
	}
	for _, set := range opts.Sets {
		if err := ctx.Err(); err != nil {
			return err
		}
		s, err := opts.Snapshot(ctx, set)
		if err != nil {
			return fmt.Errorf("file set %s: %w", set, err)
		}
		a.Snapshots = append(a.Snapshots, AppSnapshotOf(s))
	}
	for _, db := range opts.Dumps {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := opts.Dump(ctx, db)
		if err != nil {
			return fmt.Errorf("dump %s: %w", db, err)
		}
		a.Dumps = append(a.Dumps, catalog.AppDump{Database: d.Database, ID: d.ID, Bytes: d.Bytes})
	}
	if len(opts.Dumps) > 0 && opts.Globals != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		g, err := opts.Globals(ctx)
		if err != nil {
			return fmt.Errorf("roles and tablespaces (pg_dumpall --globals-only; dump_globals: false skips them): %w", err)
		}
		a.Dumps = append(a.Dumps, catalog.AppDump{Database: g.Database, ID: g.ID, Bytes: g.Bytes})
	}
	return nil
}

// AppSnapshotOf is how an app point names a snapshot.
func AppSnapshotOf(s *catalog.Snapshot) catalog.AppSnapshot {
	return catalog.AppSnapshot{Set: s.Set, ID: s.ID, Files: s.Files, Bytes: s.Bytes}
}

func recordPG(a *catalog.App, version string, num int) {
	if version != "" {
		a.Versions["postgresql"] = version
	}
	if num != 0 {
		a.Versions["postgresql_num"] = strconv.Itoa(num)
	}
}

func createPoint(ctx context.Context, opts Options, name string) (*catalog.AppRestorePoint, string, error) {
	if opts.RestorePoint != nil {
		return opts.RestorePoint(ctx, name)
	}
	return CreateRestorePoint(ctx, opts.DSN, name)
}

func serverVersion(ctx context.Context, opts Options) (string, int, error) {
	if opts.ServerVersion != nil {
		return opts.ServerVersion(ctx)
	}
	return ServerVersion(ctx, opts.DSN)
}

func waitWAL(ctx context.Context, opts Options, segment string) error {
	if opts.WaitWAL != nil {
		return opts.WaitWAL(ctx, segment)
	}
	return WaitWAL(ctx, opts, segment)
}

// pointSQL creates the restore point and reads, in the same statement,
// what the app point records of it: the server's clock, the segment
// holding the point (pg_walfile_name names the segment an end LSN is in,
// on the current timeline), the system identifier and the version.
// https://www.postgresql.org/docs/15/functions-admin.html#FUNCTIONS-ADMIN-BACKUP
const pointSQL = `SELECT lsn::text, pg_walfile_name(lsn), now(), (SELECT system_identifier FROM pg_control_system())::text,
	current_setting('server_version'), current_setting('server_version_num')
	FROM pg_create_restore_point($1) AS lsn`

// CreateRestorePoint creates the restore point name with
// pg_create_restore_point, then switches WAL (pg_switch_wal) so that
// archive_command ships the segment holding it now rather than when it
// fills. The role needs pg_create_restore_point and pg_switch_wal
// (superuser, or granted EXECUTE).
func CreateRestorePoint(ctx context.Context, dsn, name string) (*catalog.AppRestorePoint, string, error) {
	conn, err := pg.Connect(ctx, dsn, false)
	if err != nil {
		return nil, "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	res := conn.ExecParams(ctx, pointSQL, [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, "", fmt.Errorf("create restore point %s: %w", name, res.Err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 6 {
		return nil, "", fmt.Errorf("create restore point %s: unexpected result shape", name)
	}
	row := res.Rows[0]
	p := &catalog.AppRestorePoint{Name: name, LSN: string(row[0]), WALSegment: string(row[1]), SystemID: string(row[3])}
	if p.Time, err = parsePGTime(string(row[2])); err != nil {
		return nil, "", fmt.Errorf("create restore point %s: now() %q: %w", name, row[2], err)
	}
	if p.PGVersion, err = strconv.Atoi(string(row[5])); err != nil {
		return nil, "", fmt.Errorf("create restore point %s: server_version_num %q: %w", name, row[5], err)
	}
	seg, err := wal.ParseName(p.WALSegment)
	if err == nil && seg.Kind != wal.KindSegment {
		err = fmt.Errorf("%q is not a segment name", p.WALSegment)
	}
	if err != nil {
		return nil, "", fmt.Errorf("create restore point %s: %w", name, err)
	}
	p.Timeline = uint32(seg.Timeline)
	if _, err := conn.Exec(ctx, "SELECT pg_switch_wal()").ReadAll(); err != nil {
		return nil, "", fmt.Errorf("switch wal after restore point %s: %w", name, err)
	}
	return p, string(row[4]), nil
}

// parsePGTime reads a timestamptz as PostgreSQL prints it in ISO style.
func parsePGTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999-07:00", "2006-01-02 15:04:05.999999-07:00:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a timestamp")
}

// ServerVersion returns server_version and server_version_num.
func ServerVersion(ctx context.Context, dsn string) (string, int, error) {
	conn, err := pg.Connect(ctx, dsn, false)
	if err != nil {
		return "", 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	res := conn.Exec(ctx, "SELECT current_setting('server_version'), current_setting('server_version_num')")
	rs, err := res.ReadAll()
	if err != nil {
		return "", 0, fmt.Errorf("server version: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Rows) != 1 || len(rs[0].Rows[0]) != 2 {
		return "", 0, fmt.Errorf("server version: unexpected result shape")
	}
	num, err := strconv.Atoi(string(rs[0].Rows[0][1]))
	if err != nil {
		return "", 0, fmt.Errorf("server_version_num %q: %w", rs[0].Rows[0][1], err)
	}
	return string(rs[0].Rows[0][0]), num, nil
}

// WaitWAL waits until segment is in opts.Repo (archived by
// archive_command or streamed and completed by wal-receive), for at most
// opts.WALTimeout.
func WaitWAL(ctx context.Context, opts Options, segment string) error {
	timeout := opts.WALTimeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		objs, err := wal.ListWAL(ctx, opts.Repo.Store(), segment)
		if err != nil {
			return err
		}
		if len(objs) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: segment %s still missing after %s (is archive_command = 'pitr wal-push %%p' or pitr wal-receive running? see pg_stat_archiver)",
				ErrWALTimeout, segment, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runHook runs one hook with its timeout, logging its output line by line
// at info with the hook's name.
func runHook(ctx context.Context, h Hook, when string) (catalog.AppHook, error) {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	log := zerolog.Ctx(ctx).With().Str("hook", h.Name).Str("when", when).Logger()
	rec := catalog.AppHook{Name: h.Name, When: when, ExitCode: -1}
	if len(h.Command) == 0 {
		return rec, fmt.Errorf("%s hook %s: no command", when, h.Name)
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, h.Command[0], h.Command[1:]...)
	cmd.WaitDelay = 5 * time.Second // a child holding the pipe open cannot hang us
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			log.Info().Str("line", sc.Text()).Msg("hook output")
		}
		_, _ = io.Copy(io.Discard, pr) // an overlong line: drain the rest
	}()
	began := time.Now()
	log.Info().Strs("command", h.Command).Msg("hook started")
	err := cmd.Run()
	_ = pw.Close()
	<-done
	rec.Seconds = time.Since(began).Seconds()
	if cmd.ProcessState != nil {
		rec.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case hctx.Err() == context.DeadlineExceeded:
		err = fmt.Errorf("%s hook %s: killed after its timeout %s", when, h.Name, timeout)
	case err != nil:
		err = fmt.Errorf("%s hook %s: %w", when, h.Name, err)
	default:
		log.Info().Float64("seconds", rec.Seconds).Msg("hook done")
		return rec, nil
	}
	return rec, err
}

// runVersion returns a version command's output, trimmed (its first few
// lines, at most maxVersionBytes), or "error: ..." when it fails, which
// is logged as a warning and does not fail the backup.
func runVersion(ctx context.Context, v Version) string {
	if len(v.Command) == 0 {
		return "error: no command"
	}
	vctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	cmd := exec.CommandContext(vctx, v.Command[0], v.Command[1:]...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(strings.TrimSpace(string(ee.Stderr))) > 0 {
			msg += ": " + firstLine(string(ee.Stderr))
		}
		zerolog.Ctx(ctx).Warn().Str("version", v.Name).Strs("command", v.Command).Str("error", msg).Msg("version command failed")
		return "error: " + msg
	}
	s := strings.TrimSpace(string(out))
	if len(s) > maxVersionBytes {
		s = strings.TrimSpace(s[:maxVersionBytes])
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
