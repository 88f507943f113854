package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
)

// RedisServer is a redis-server on 127.0.0.1 for one test, with its
// database file in Dir, as Mastodon's Redis keeps /var/lib/redis/dump.rdb.
type RedisServer struct {
	Addr string // "127.0.0.1:PORT"
	Port int
	Dir  string // the server's working directory, holding DBFilename
	// DBFilename is the RDB file it loads at start and writes on SAVE.
	DBFilename string

	cli     string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// RedisOptions say where a server keeps its data. A zero value gives a
// new empty directory and dump.rdb.
type RedisOptions struct {
	// Dir is the working directory; an RDB file there is loaded at start
	// (a restored dump.rdb). Default: a new Dir(t).
	Dir        string
	DBFilename string // default dump.rdb
}

// Redis starts an empty redis-server for this test and stops it when the
// test ends.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	return RedisWith(t, RedisOptions{})
}

// RedisWith starts a redis-server on a free port with opts, e.g. on the
// directory a restore brought back, and stops it when the test ends. It
// skips (or fails, PITR_TEST_REQUIRE=1) without Debian's redis-server and
// redis-cli.
func RedisWith(t testing.TB, opts RedisOptions) *RedisServer {
	t.Helper()
	bin, cli := RequireRedis(t)
	if opts.Dir == "" {
		opts.Dir = Dir(t)
	}
	if opts.DBFilename == "" {
		opts.DBFilename = "dump.rdb"
	}
	addr, err := pickAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	logDir, err := mkdirTemp("redis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(logDir) })
	r := &RedisServer{
		Addr: addr, Port: port, Dir: opts.Dir, DBFilename: opts.DBFilename,
		cli: cli, logPath: filepath.Join(logDir, "redis.log"),
	}
	// As for MinIO: another package's server may take the port freeAddr
	// picked before redis-server binds it.
	for attempt := 1; ; attempt++ {
		err := r.start(bin)
		if err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) || attempt == 5 {
			t.Fatal(err)
		}
		if r.Addr, err = pickAddr(); err != nil {
			t.Fatal(err)
		}
		_, portStr, _ := net.SplitHostPort(r.Addr)
		r.Port, _ = strconv.Atoi(portStr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(r.logPath); err == nil {
				t.Logf("last lines of %s:\n%s", r.logPath, scratch.LastLines(string(b), 30))
			}
		}
		r.stop()
	})
	return r
}

// RequireRedis returns the paths of redis-server and redis-cli, or skips
// (fails with PITR_TEST_REQUIRE=1) when either is missing.
func RequireRedis(t testing.TB) (server, cli string) {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err != nil {
		skipOrFail(t, "no redis-server in PATH: apt-get install redis-server")
	}
	cli, err = exec.LookPath("redis-cli")
	if err != nil {
		skipOrFail(t, "no redis-cli in PATH: apt-get install redis-server")
	}
	return server, cli
}

// CLI is the redis-cli path, for hooks that talk to this server.
func (r *RedisServer) CLI() string { return r.cli }

// Do runs one command through redis-cli and returns its output, trimmed.
func (r *RedisServer) Do(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(r.cli, append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.Port)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *RedisServer) start(bin string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// No automatic saves and no AOF: the file changes only when the test
	// (or a hook) asks, so what a snapshot holds is what the test wrote.
	logStart := fileSize(r.logPath)
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--dir", r.Dir, "--dbfilename", r.DBFilename,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--repl-diskless-sync-delay", "0", // redis-cli --rdb: no 5s wait for more replicas
		"--logfile", r.logPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	r.cmd, r.done = cmd, done
	if err := r.waitReady(done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		r.cmd = nil
		if logSince(r.logPath, logStart, "already in use") {
			err = errAddrInUse
		}
		b, _ := os.ReadFile(r.logPath)
		return fmt.Errorf("start redis-server on %s: %w\n%s", r.Addr, err, scratch.LastLines(string(b), 20))
	}
	return nil
}

// waitReady waits until PING answers PONG, and a loading server (a large
// dump.rdb) answers -LOADING, not PONG. The server must be this one (its
// dir), not another test's that holds the port.
func (r *RedisServer) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r.ping() {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("no PONG after 30s")
		}
		select {
		case <-done:
			return errors.New("redis-server exited")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *RedisServer) ping() bool {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "+PONG" {
		return false
	}
	// *2 $3 dir $N <dir>: five lines.
	if _, err := c.Write([]byte("CONFIG GET dir\r\n")); err != nil {
		return false
	}
	var dir string
	for range 5 {
		if line, err = br.ReadString('\n'); err != nil {
			return false
		}
		dir = strings.TrimSpace(line)
	}
	want, err := filepath.EvalSymlinks(r.Dir)
	return err == nil && (dir == r.Dir || dir == want)
}

// Stop stops the server without saving (saves are off): the RDB file
// stays as the last SAVE or BGSAVE left it.
func (r *RedisServer) Stop(t testing.TB) {
	t.Helper()
	r.stop()
}

func (r *RedisServer) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}
