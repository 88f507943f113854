// Package scratch runs a throwaway PostgreSQL cluster: initdb into a fresh
// directory, a server on a free 127.0.0.1 port, trust authentication. The
// integration tests use it through internal/testenv, and `pitr demo` (and
// later restore drills) use it at run time, so it imports no testing code
// (.golangci.yml's test-helpers rule) and no pitr layer above
// internal/pgserver (its leaves rule).
//
// PostgreSQL refuses to run as root. When the process is root, every server
// and tool runs as the `postgres` system user (see PostgresUser), and the
// directories the server touches are owned by that user; otherwise everything
// runs as the current user.
//
// The postmaster is started directly as a child process, not through
// `pg_ctl start`: pg_ctl daemonizes the server, and where PID 1 does not reap
// orphans (some containers and VMs) the dead postmaster of a Kill stays a
// zombie whose pid in postmaster.pid makes the next start refuse to run. As a
// child we reap it ourselves, and on Linux it receives SIGQUIT (immediate
// shutdown) if our process dies, so a crashed test leaves no server behind.
package scratch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pitr-dev/pitr/internal/pgserver"
)

// Options configures Init and Open. The zero value is usable.
type Options struct {
	// BinDir holds initdb, postgres and the client tools. Default:
	// $PITR_PG_BIN, else what pgserver.FindBinDir finds: for Open the
	// installation of the data directory's major, for Init the newest one.
	BinDir string
	// Dir is the parent directory of the cluster (created 0755 if missing):
	// Init puts the data directory in Dir/data; the socket directory
	// Dir/sock and the server log Dir/server.log are there for both Init and
	// Open. Default: a new directory under os.TempDir(). Remove (and a
	// failed Init) deletes Dir and everything in it. The server's user must
	// be able to enter every directory above it.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Settings are extra server settings, e.g. "archive_mode": "on". Init
	// writes them to postgresql.conf (so a base backup carries them); an
	// Open cluster gets them as -c options at every Start.
	Settings map[string]string
	// Env is added to the environment of the server (and so of its
	// archive_command and restore_command) and of RunAsOwner.
	Env []string
	// Log receives initdb and server output (nil discards it). The server
	// output also goes to Dir/server.log.
	Log io.Writer
}

// Cluster is one scratch cluster. Start, Stop, Kill and Remove must not be
// called concurrently; the query helpers may be.
type Cluster struct {
	DataDir   string // PGDATA, owned by the server's user, mode 0700
	BinDir    string
	SocketDir string // unix_socket_directories
	Port      int
	Dir       string // parent of the socket dir and server.log; see Options.Dir

	opts      Options
	openErr   error    // deferred from Open, returned by Start
	extraArgs []string // -c settings for an Open cluster
	tmpSock   bool     // SocketDir is a separate temp dir (Dir's path was too long)
	autoPort  bool     // Port was picked for us and may be re-picked until a first start
	started   bool     // the server reached ready once

	proc *os.Process   // the postmaster we started, nil if none
	done chan struct{} // closed once proc has exited and been reaped
}

// Init creates a cluster with initdb (data checksums on, trust
// authentication, superuser postgres, UTF8) and configures it for
// 127.0.0.1 and replication, then opts.Settings. fsync stays on: tests
// kill the server and check what survives. It does not start it; if it
// fails, Dir is deleted.
func Init(ctx context.Context, opts Options) (_ *Cluster, err error) {
	user, err := sortedSettings(opts.Settings)
	if err != nil {
		return nil, err
	}
	c, err := newCluster(opts, "")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(c.Dir)
			if c.tmpSock {
				_ = os.RemoveAll(c.SocketDir)
			}
		}
	}()
	c.DataDir = filepath.Join(c.Dir, "data")
	if err := os.Mkdir(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := ChownToPostgres(c.DataDir); err != nil {
		return nil, err
	}
	out, err := c.RunAsOwner(ctx, "initdb", "-D", c.DataDir, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--data-checksums", "--no-sync", "--no-instructions")
	if c.opts.Log != nil {
		_, _ = c.opts.Log.Write(out)
	}
	if err != nil {
		return nil, err
	}
	settings := []pgserver.Setting{
		{Name: "listen_addresses", Value: "127.0.0.1"},
		{Name: "unix_socket_directories", Value: c.SocketDir},
		{Name: "wal_level", Value: "replica"},
		{Name: "max_wal_senders", Value: "10"},
		{Name: "max_replication_slots", Value: "10"},
	}
	if err := writeConf(c.DataDir, withSettings(settings, user)); err != nil {
		return nil, err
	}
	if err := writeHBA(filepath.Join(c.DataDir, "pg_hba.conf")); err != nil {
		return nil, err
	}
	return c, nil
}

// Open returns a cluster for an existing data directory, for example one
// produced by a restore; nothing is created in dataDir. Start runs the server
// with opts.Port, the socket dir and listen address on the command line, so
// the configuration inside dataDir may name others. The data directory must
// already be owned by the server's user with mode 0700 (see
// ChownToPostgres). Errors are reported by Start.
func Open(opts Options, dataDir string) *Cluster {
	c, err := newCluster(opts, dataDir)
	if err != nil {
		return &Cluster{DataDir: dataDir, opts: opts, openErr: err, done: closedChan()}
	}
	c.DataDir, c.openErr = filepath.Abs(dataDir)
	user, err := sortedSettings(opts.Settings)
	if err != nil {
		c.openErr = err
	}
	for _, s := range user {
		c.extraArgs = append(c.extraArgs, "-c", s.Name+"="+s.Value)
	}
	return c
}

func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// newCluster resolves the binaries (for dataDir's major, if given) and
// creates Dir, its socket dir and server.log.
func newCluster(opts Options, dataDir string) (*Cluster, error) {
	bin, err := FindBinDir(opts.BinDir, dataDir)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if _, _, ok := PostgresUser(); !ok {
			return nil, errors.New(`running as root needs a "postgres" system user to run the server as`)
		}
	}
	c := &Cluster{BinDir: bin, Port: opts.Port, autoPort: opts.Port == 0, opts: opts, done: closedChan()}
	if c.autoPort {
		if c.Port, err = freePort(); err != nil {
			return nil, err
		}
	}
	created := false
	if opts.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "pitr-pg-"); err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
		created = true
	} else {
		if c.Dir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
	}
	if err := c.prepareDir(); err != nil {
		if created {
			_ = os.RemoveAll(c.Dir)
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) prepareDir() error {
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return err
	}
	if err := checkReachable(c.Dir); err != nil {
		return err
	}
	if err := checkReachable(c.BinDir); err != nil {
		return err
	}
	c.SocketDir = filepath.Join(c.Dir, "sock")
	// A unix socket path holds at most 107 bytes.
	if len(c.SocketDir)+len("/.s.PGSQL.65535.lock") > 100 {
		dir, err := os.MkdirTemp("", "pitr-sock-")
		if err != nil {
			return fmt.Errorf("create socket dir: %w", err)
		}
		c.SocketDir, c.tmpSock = dir, true
	} else if err := os.Mkdir(c.SocketDir, 0o755); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	if err := os.Chmod(c.SocketDir, 0o755); err != nil {
		return err
	}
	return ChownToPostgres(c.SocketDir)
}

// FindBinDir is pgserver.FindBinDir with dir defaulting to $PITR_PG_BIN.
// The error wraps pgserver.ErrNoBinaries.
func FindBinDir(dir, dataDir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("PITR_PG_BIN")
	}
	bin, err := pgserver.FindBinDir(dir, dataDir)
	if err != nil && dir == "" {
		return "", fmt.Errorf("%w (set PITR_PG_BIN)", err)
	}
	return bin, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LogPath is the server log, Dir/server.log.
func (c *Cluster) LogPath() string { return filepath.Join(c.Dir, "server.log") }

// Running reports whether the postmaster we started is alive.
func (c *Cluster) Running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Start runs the server and returns once it accepts connections (status
// "ready", or "standby" for a hot standby), or when it exits, with the end of
// its log. Recovery with restore_command runs before ready, so bound a long
// one with ctx; when ctx ends first the server is shut down. If the port was
// picked automatically and another process took it before the first start, a
// new one is picked.
func (c *Cluster) Start(ctx context.Context) error {
	if c.openErr != nil {
		return c.openErr
	}
	if c.Running() {
		return errors.New("start postgres: already running")
	}
	for attempt := 0; ; attempt++ {
		log, err := c.startProcess()
		if err != nil {
			return err
		}
		err = c.waitReady(ctx)
		if err == nil {
			c.started = true
			return nil
		}
		if c.autoPort && !c.started && attempt < 5 && strings.Contains(log.tail(), "already in use") {
			if c.Port, err = freePort(); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("start postgres: %w%s", err, log.tail())
	}
}

// logSince reads the server log from the offset a start began at.
type logSince struct {
	path   string
	offset int64
}

// tail returns the last lines logged since the start, for error messages.
func (l logSince) tail() string {
	b, err := readFrom(l.path, l.offset)
	if err != nil || len(b) == 0 {
		return ""
	}
	return "; server log: " + strings.ReplaceAll(strings.ReplaceAll(LastLines(string(b), 20), "\t", " "), "\n", " | ")
}

func readFrom(path string, offset int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) startProcess() (logSince, error) {
	f, err := os.OpenFile(c.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return logSince{}, fmt.Errorf("open server log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return logSince{}, err
	}
	log := logSince{path: c.LogPath(), offset: fi.Size()}
	args := []string{"-D", c.DataDir, "-p", strconv.Itoa(c.Port), "-k", c.SocketDir, "-h", "127.0.0.1"}
	// Not CommandContext: the server outlives the ctx of Start.
	cmd := exec.Command(c.toolPath("postgres"), append(args, c.extraArgs...)...)
	c.asOwner(cmd)
	// Without Log the child gets the file itself and keeps logging even if
	// our process dies; the server's user need not own it.
	cmd.Stdout, cmd.Stderr = f, f
	if c.opts.Log != nil {
		w := io.MultiWriter(f, c.opts.Log)
		cmd.Stdout, cmd.Stderr = w, w
		// Backends inherit the pipe; do not wait on it forever after the
		// postmaster exits.
		cmd.WaitDelay = 5 * time.Second
	}
	cmd.SysProcAttr.Setpgid = true
	setParentDeathSignal(cmd.SysProcAttr, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		f.Close()
		return log, fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	c.proc, c.done = cmd.Process, done
	return log, nil
}

// waitReady polls postmaster.pid as `pg_ctl -w` does.
func (c *Cluster) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if f, err := pgserver.ReadPIDFile(c.DataDir); err == nil && f.PID == c.proc.Pid && (f.Status == "ready" || f.Status == "standby") {
			return nil
		}
		select {
		case <-c.done:
			return errors.New("server exited")
		case <-ctx.Done():
			_ = c.shutdown(context.Background(), syscall.SIGQUIT, 10*time.Second)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Stop shuts the server down in fast mode (rolls back open transactions,
// checkpoint) and waits for it to exit. Stopping a stopped server is not an
// error. A server this Cluster did not start (e.g. by `pg_ctl start` through
// RunAsOwner) is stopped with pg_ctl.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.proc == nil || !c.Running() {
		if c.postmasterPid() != 0 {
			_, err := c.RunAsOwner(ctx, "pg_ctl", "stop", "-D", c.DataDir, "-m", "fast", "-w")
			return err
		}
		return nil
	}
	return c.shutdown(ctx, syscall.SIGINT, 0)
}

// shutdown sends sig (SIGINT fast, SIGQUIT immediate) and waits for the
// exit: until ctx ends, and at most timeout if positive.
func (c *Cluster) shutdown(ctx context.Context, sig syscall.Signal, timeout time.Duration) error {
	if err := c.proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop postgres: %w", err)
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-c.done:
		return nil
	case <-expired:
		return fmt.Errorf("stop postgres: still running after %s", timeout)
	case <-ctx.Done():
		return fmt.Errorf("stop postgres: %w", ctx.Err())
	}
}

// Kill simulates a crash: SIGKILL to the postmaster (pid from
// postmaster.pid) and all its children at once, leaving postmaster.pid,
// shared memory state and unflushed buffers as a power loss would (the WAL
// already written by the kernel survives, as on a real crash of PostgreSQL
// alone). It returns once they are gone; Start then runs crash recovery.
func (c *Cluster) Kill() error {
	pid := c.postmasterPid()
	if pid == 0 {
		return errors.New("kill postgres: not running")
	}
	// Freeze the postmaster so it starts no new children while we collect
	// them; the children are process-group leaders (InitPostmasterChild
	// calls setsid), so their own children, such as an archive_command, go
	// with their group.
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	kids := childrenOf(pid)
	for _, k := range kids {
		_ = syscall.Kill(-k, syscall.SIGKILL)
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill postgres: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	if c.proc != nil && c.proc.Pid == pid {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("kill postgres: postmaster %d still running", pid)
		}
	} else {
		kids = append(kids, pid)
	}
	for _, k := range kids {
		for pgserver.ProcessAlive(k) {
			if time.Now().After(deadline) {
				return fmt.Errorf("kill postgres: process %d still running", k)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// postmasterPid returns the pid of the running postmaster, ours or one
// started otherwise on DataDir, or 0. A postmaster.pid left by a crash names
// a dead process, or one that reused its pid: pgserver.LivePostmaster tells
// them apart.
func (c *Cluster) postmasterPid() int {
	if c.proc != nil && c.Running() {
		return c.proc.Pid
	}
	if pid, ok := pgserver.LivePostmaster(c.DataDir); ok {
		return pid
	}
	return 0
}

// Remove shuts the server down in immediate mode if it is running (killing
// it if that does not work within 10s) and deletes Dir.
func (c *Cluster) Remove() error {
	if c.proc != nil && c.Running() {
		if err := c.shutdown(context.Background(), syscall.SIGQUIT, 10*time.Second); err != nil {
			if err := c.Kill(); err != nil {
				return err
			}
		}
	} else if c.postmasterPid() != 0 {
		_ = c.Kill()
	}
	if c.tmpSock {
		_ = os.RemoveAll(c.SocketDir)
	}
	if c.Dir == "" {
		return nil
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("remove cluster: %w", err)
	}
	return nil
}

// DSN is a libpq keyword/value connection string for database db over TCP.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", c.Port, quoteDSN(db))
}

// URL is DSN as a postgres:// URL, for tools and configs that want one.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

func quoteDSN(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Conn connects to database postgres; the caller closes it.
func (c *Cluster) Conn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connect to scratch cluster: %w", err)
	}
	return conn, nil
}

// Exec runs sql on its own connection to database postgres; without args it
// may hold several statements.
func (c *Cluster) Exec(ctx context.Context, sql string, args ...any) error {
	conn, err := c.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("exec %q: %w", abbrev(sql), err)
	}
	return nil
}

// QueryInt returns the single integer value sql yields.
func (c *Cluster) QueryInt(ctx context.Context, sql string, args ...any) (int64, error) {
	var v int64
	return v, c.queryRow(ctx, sql, args, &v)
}

// QueryString returns the single text value sql yields.
func (c *Cluster) QueryString(ctx context.Context, sql string, args ...any) (string, error) {
	var v string
	return v, c.queryRow(ctx, sql, args, &v)
}

func (c *Cluster) queryRow(ctx context.Context, sql string, args []any, dst any) error {
	conn, err := c.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, sql, args...).Scan(dst); err != nil {
		return fmt.Errorf("query %q: %w", abbrev(sql), err)
	}
	return nil
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) { return freePort() }
