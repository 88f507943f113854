package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// errNoDaemon says the resident process never created its socket: the
// pitr being measured has no `pitr daemon` socket (yet), and the mode is
// reported as not available rather than failing the run.
var errNoDaemon = errors.New("the daemon did not create its socket")

// daemon is a resident process archive_command hands segments to (pitr
// daemon with socket set). The harness starts it as its own child, so its
// CPU time and peak RSS are counted with the calls' (start-up included,
// which a long-running daemon would have paid once).
type daemon struct {
	cmd *exec.Cmd
}

// startDaemon runs cmd through /bin/sh and waits until socket exists.
func startDaemon(cmd, socket string, log io.Writer) (*daemon, error) {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	c := exec.Command("/bin/sh", "-c", "exec "+cmd)
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	d := &daemon{cmd: c}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if fi, err := os.Stat(socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return d, nil
		}
		if exited(c.Process.Pid) {
			_ = d.stop()
			return nil, fmt.Errorf("%w: it exited (see the run's log)", errNoDaemon)
		}
		if time.Now().After(deadline) {
			_ = d.stop()
			return nil, fmt.Errorf("%w within 15 s", errNoDaemon)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM (the daemon stores what it has and exits 0) and waits,
// killing it after a minute.
func (d *daemon) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		err := <-done
		return fmt.Errorf("daemon did not exit within a minute of SIGTERM; killed: %v", err)
	}
}

// exited says whether pid is a zombie (exited, not yet waited for).
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}
