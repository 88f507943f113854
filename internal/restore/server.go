package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/pgserver"
)

// StartOptions configures Start.
type StartOptions struct {
	DataDir string
	// BinDir holds the server's programs, pg_ctl and pg_controldata among
	// them. Default:
	// /usr/lib/postgresql/<major>/bin (Debian's layout) for the major in
	// DataDir/PG_VERSION, else the directory of pg_ctl in PATH (see
	// pgserver.FindBinDir).
	BinDir string
	// Port and SocketDir override the configuration's port and
	// unix_socket_directories when set.
	Port      int
	SocketDir string
	// LogFile receives the server's output. Default:
	// DataDir/log/pitr-restore-<UTC time>.log.
	LogFile string
	// Timeout bounds the whole recovery; 0 means only ctx does.
	Timeout time.Duration
	// Env is added to the server's environment, and so to its
	// restore_command's.
	Env []string
}

// Reached describes where a finished recovery stopped.
type Reached struct {
	Timeline uint32        // the new timeline the server runs on
	LSN      pglogrepl.LSN // end of the replayed WAL: the new timeline's switch point
	Reason   string        // from the timeline history, e.g. "before 2026-11-22 14:01:00.123456+00"
	Time     time.Time     // commit time of the last replayed transaction; zero if unknown
	Log      string        // the server log
}

// pollInterval is how often Start looks at the server while it recovers.
const pollInterval = 200 * time.Millisecond

// Start starts the server on a restored data directory prepared by
// WriteRecoveryConfig and waits until recovery has ended and the server
// runs as a primary ("in production" in pg_controldata). When we are root,
// pg_ctl and pg_controldata run as the data directory's owner.
//
// Either the server runs when Start returns without error, or Start has
// stopped it: when the postmaster exits (a FATAL such as "recovery ended
// before configured recovery target was reached", whose line leads the
// error, followed by the end of the log), when recovery pauses at its
// target (recovery_target_action = 'pause'), and when ctx or Timeout ends
// first (fast shutdown; starting again resumes recovery).
func Start(ctx context.Context, opts StartOptions) (Reached, error) {
	s, err := newServer(opts)
	if err != nil {
		return Reached{}, err
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	log := zerolog.Ctx(ctx)
	log.Info().Str("pgdata", s.dataDir).Str("log", s.log.path).Msg("starting server for recovery")
	if err := s.start(ctx); err != nil {
		return Reached{}, err
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		s.log.update()
		if s.collector != nil {
			s.collector.update()
		}
		if !s.running() {
			return Reached{}, s.exited()
		}
		state, err := s.controlData(ctx)
		if err == nil && state["Database cluster state"] == "in production" {
			r, err := s.reached(state)
			if err != nil {
				s.stop()
				return Reached{}, err
			}
			log.Info().Uint32("timeline", r.Timeline).Str("lsn", r.LSN.String()).Str("reason", r.Reason).Msg("recovery finished")
			return r, nil
		}
		if s.paused() {
			s.stop()
			return Reached{}, fmt.Errorf("recovery paused at its target (recovery_target_action = 'pause'); server stopped, see %s", s.log.path)
		}
		select {
		case <-ctx.Done():
			s.stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && opts.Timeout > 0 {
				return Reached{}, fmt.Errorf("recovery did not finish within %s; server stopped (starting it again resumes recovery), see %s", opts.Timeout, s.log.path)
			}
			return Reached{}, fmt.Errorf("recovery interrupted: %w; server stopped (starting it again resumes recovery)", ctx.Err())
		case <-tick.C:
		}
	}
}

type server struct {
	opts      StartOptions
	dataDir   string
	binDir    string
	owner     pgserver.Owner
	log       *serverLog
	collector *serverLog // logging_collector's file, once current_logfiles names it
	ctlOut    string     // pg_ctl start's output
}

func newServer(opts StartOptions) (*server, error) {
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &server{opts: opts, dataDir: dir}
	if s.owner, err = pgserver.OwnerOf(dir); errors.Is(err, pgserver.ErrRootOwned) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if s.binDir, err = pgserver.FindBinDir(opts.BinDir, dir); err != nil && opts.BinDir == "" {
		return nil, fmt.Errorf("start postgres: %w; add the server's bin directory to PATH", err)
	} else if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if pid, ok := s.postmaster(); ok && pgserver.IsPostgres(pid) {
		return nil, fmt.Errorf("start postgres: a server (pid %d) is already running on %s", pid, dir)
	}
	logPath := opts.LogFile
	if logPath == "" {
		logDir := filepath.Join(dir, "log")
		if err := os.Mkdir(logDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
		if err := s.owner.Chown(logDir); err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
		logPath = filepath.Join(logDir, "pitr-restore-"+time.Now().UTC().Format("20060102T150405Z")+".log")
	}
	if logPath, err = filepath.Abs(logPath); err != nil {
		return nil, err
	}
	s.log = &serverLog{path: logPath}
	if fi, err := os.Stat(logPath); err == nil {
		s.log.off = fi.Size() // pg_ctl appends
	}
	return s, nil
}

// command prepares a tool from binDir to run as the data directory's
// owner, with our environment and env.
func (s *server) command(ctx context.Context, env []string, tool string, args ...string) *exec.Cmd {
	return s.owner.Command(ctx, s.dataDir, env, filepath.Join(s.binDir, tool), args...)
}

// start runs pg_ctl start. Its -w returns once the server accepts
// (read-only) connections, or at -t; either way Start's loop then watches
// recovery itself, so pg_ctl's exit status alone decides nothing.
func (s *server) start(ctx context.Context) error {
	wait := 60 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	args := []string{"start", "-D", s.dataDir, "-l", s.log.path, "-w", "-t", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))}
	var o []string
	if s.opts.Port != 0 {
		o = append(o, "-p", strconv.Itoa(s.opts.Port))
	}
	if s.opts.SocketDir != "" {
		o = append(o, "-k", shellQuote(s.opts.SocketDir))
	}
	if len(o) > 0 {
		args = append(args, "-o", strings.Join(o, " "))
	}
	out, err := s.command(ctx, s.opts.Env, "pg_ctl", args...).CombinedOutput()
	s.ctlOut = strings.TrimSpace(string(out))
	if ctx.Err() != nil {
		s.stop()
		return fmt.Errorf("start postgres: %w", ctx.Err())
	}
	if err != nil && !s.running() {
		return s.exited()
	}
	return nil
}

// shellQuote quotes for the shell pg_ctl runs the server with.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// postmaster returns the pid in postmaster.pid when that process lives.
func (s *server) postmaster() (int, bool) {
	f, err := pgserver.ReadPIDFile(s.dataDir)
	return f.PID, err == nil && pgserver.ProcessAlive(f.PID)
}

func (s *server) running() bool {
	_, ok := s.postmaster()
	return ok
}

// stop shuts a server we started down, fast, else immediately; it runs
// when Start fails, so it reports nothing.
func (s *server) stop() {
	if !s.running() {
		return
	}
	for _, mode := range []string{"fast", "immediate"} {
		ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
		err := s.command(ctx, s.opts.Env, "pg_ctl", "stop", "-D", s.dataDir, "-m", mode, "-w", "-t", "60").Run()
		cancel()
		if err == nil || !s.running() {
			return
		}
	}
}

// controlData runs pg_controldata, in the C locale so that labels and
// states are not translated.
func (s *server) controlData(ctx context.Context) (map[string]string, error) {
	env := []string{"LC_ALL=C", "PATH=" + os.Getenv("PATH")}
	cmd := s.command(ctx, nil, "pg_controldata", "-D", s.dataDir)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pg_controldata: %w", err)
	}
	m := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// reached gathers what Start reports once the server is in production.
func (s *server) reached(state map[string]string) (Reached, error) {
	r := Reached{Log: s.log.path}
	if tli, err := strconv.ParseUint(state["Latest checkpoint's TimeLineID"], 10, 32); err == nil {
		r.Timeline = uint32(tli)
	}
	// A promotion may not have finished its checkpoint yet; the new
	// timeline's history file is written before the state changes.
	walDir := filepath.Join(s.dataDir, "pg_wal")
	if names, err := filepath.Glob(filepath.Join(walDir, "*.history")); err == nil {
		for _, n := range names {
			if tli, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), ".history"), 16, 32); err == nil {
				r.Timeline = max(r.Timeline, uint32(tli))
			}
		}
	}
	if r.Timeline == 0 {
		return r, fmt.Errorf("recovery finished, but pg_controldata shows no timeline")
	}
	if b, err := os.ReadFile(filepath.Join(walDir, fmt.Sprintf("%08X.history", r.Timeline))); err == nil {
		r.LSN, r.Reason = lastSwitch(b)
	}
	for _, l := range []*serverLog{s.log, s.collector} {
		if l != nil {
			l.update()
			if r.Time.IsZero() {
				r.Time = l.lastXact
			}
		}
	}
	return r, nil
}

// lastSwitch returns the switch point and reason of the last entry of a
// timeline history file: "<parent tli>\t<lsn>\t<reason>" lines, see
// https://www.postgresql.org/docs/current/continuous-archiving.html#BACKUP-TIMELINES
func lastSwitch(history []byte) (pglogrepl.LSN, string) {
	var lsn pglogrepl.LSN
	var reason string
	for line := range strings.Lines(string(history)) {
		f := strings.SplitN(strings.TrimRight(line, "\r\n"), "\t", 3)
		if len(f) < 2 || strings.HasPrefix(strings.TrimSpace(f[0]), "#") {
			continue
		}
		l, err := parseLSN(strings.TrimSpace(f[1]))
		if err != nil {
			continue
		}
		lsn, reason = l, ""
		if len(f) == 3 {
			reason = strings.TrimSpace(f[2])
		}
	}
	return lsn, reason
}

func (s *server) paused() bool {
	if s.collector == nil {
		s.findCollector()
	}
	return s.log.paused || s.collector != nil && s.collector.paused
}

// findCollector follows current_logfiles: with logging_collector on, the
// server writes to log_directory, and our log only gets its first lines.
// That file is read from its start, so it may hold older runs too.
func (s *server) findCollector() {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "current_logfiles"))
	if err != nil {
		return
	}
	for line := range strings.Lines(string(b)) {
		if kind, p, ok := strings.Cut(strings.TrimSpace(line), " "); ok && kind == "stderr" {
			if !filepath.IsAbs(p) {
				p = filepath.Join(s.dataDir, p)
			}
			s.collector = &serverLog{path: p}
			s.collector.update()
			return
		}
	}
}

// exited is Start's error once the postmaster is gone: the last FATAL or
// PANIC line first, then the end of the log.
func (s *server) exited() error {
	s.log.update()
	logs := []*serverLog{s.log}
	if s.collector == nil {
		s.findCollector()
	}
	if s.collector != nil {
		s.collector.update()
		logs = append(logs, s.collector)
	}
	summary, tailOf := "", s.log
	for _, l := range logs {
		switch {
		case l.fatal != "":
			summary, tailOf = l.fatal, l
		case l.shutdownAtTarget && summary == "":
			summary, tailOf = "recovery reached its target and shut down (recovery_target_action = 'shutdown')", l
		}
	}
	if summary == "" {
		summary = "server exited during recovery"
		if len(s.log.lines) == 0 && s.ctlOut != "" {
			summary += ": " + strings.ReplaceAll(s.ctlOut, "\n", " ")
		}
	}
	tail := strings.ReplaceAll(strings.Join(tailOf.lines, " | "), "\t", " ") // errors are one line
	if tail == "" {
		return fmt.Errorf("start postgres: %s (log %s is empty)", summary, tailOf.path)
	}
	return fmt.Errorf("start postgres: %s; last lines of %s: %s", summary, tailOf.path, tail)
}

// tailLines is how much of the server log errors show.
const tailLines = 20

// serverLog follows a server log file as it grows.
type serverLog struct {
	path    string
	off     int64
	partial []byte   // an incomplete last line
	lines   []string // the last tailLines complete lines

	fatal            string    // the last FATAL or PANIC message
	paused           bool      // recovery paused at its target
	shutdownAtTarget bool      // recovery_target_action = 'shutdown' happened
	lastXact         time.Time // "last completed transaction was at log time"
}

// Messages of PostgreSQL 15's xlogrecovery.c that serverLog looks for.
var (
	severity = regexp.MustCompile(`\b(FATAL|PANIC):\s.*$`)
	lastXact = regexp.MustCompile(`last completed transaction was at log time (\S+ \S+)`)
	// Rejections of connection attempts while the server starts are not
	// why it failed.
	connectionNoise = regexp.MustCompile(`the database system is (starting up|not yet accepting connections|shutting down|in recovery mode)|not accepting connections`)
)

func (l *serverLog) update() {
	f, err := os.Open(l.path)
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() < l.off {
		l.off = 0 // truncated or rotated in place
	}
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		return
	}
	br := bufio.NewReader(f)
	for {
		chunk, err := br.ReadBytes('\n')
		l.off += int64(len(chunk))
		l.partial = append(l.partial, chunk...)
		if err != nil {
			return
		}
		l.scan(strings.TrimRight(string(l.partial), "\r\n"))
		l.partial = l.partial[:0]
	}
}

func (l *serverLog) scan(line string) {
	l.lines = append(l.lines, line)
	if len(l.lines) > tailLines {
		l.lines = slices.Delete(l.lines, 0, len(l.lines)-tailLines)
	}
	switch {
	case strings.Contains(line, "pausing at the end of recovery"):
		l.paused = true
	case strings.Contains(line, "shutdown at recovery target"):
		l.shutdownAtTarget = true
	}
	if m := severity.FindString(line); m != "" && !connectionNoise.MatchString(m) {
		l.fatal = m
	}
	if m := lastXact.FindStringSubmatch(line); m != nil {
		if t, err := parseTime(m[1]); err == nil {
			l.lastXact = t
		}
	}
}
