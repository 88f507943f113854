package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
	"github.com/pitr-dev/pitr/wal/archive"
)

func newWALFetchCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "wal-fetch NAME PATH",
		Short: "Restore one WAL file (restore_command = 'pitr wal-fetch %f %p')",
		Long: `Restore one WAL file. Exit status: 0 restored; 1 the repository confirmed the
file is not archived (recovery ends there); 126 anything else (storage
unreachable after retries, wrong key, tampered object), which makes
PostgreSQL stop recovery instead of promoting early on missing WAL.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(c *cobra.Command, args []string) error { return runWALFetch(c.Context(), e, args[0], args[1]) },
	}
}

func runWALFetch(ctx context.Context, e *env, name, dest string) error {
	if _, err := wal.ParseName(name); err != nil {
		return fmt.Errorf("%w: wal-fetch: %v", errUsage, err)
	}
	pdir := filepath.Join(filepath.Dir(dest), "pitr", "prefetch")
	if e.cfg.SpoolDir != "" {
		pdir = filepath.Join(e.cfg.SpoolDir, "prefetch")
	}
	ctx, cancel := e.walDeadline(ctx, "wal-fetch")
	defer cancel()
	// The store and codec are set up only when the segment was not
	// prefetched.
	opts := archive.FetchOptions{PrefetchDir: pdir, Prefetch: e.cfg.FetchPrefetch, Retry: e.retryPolicy(), Repo: e.cfg.Repo,
		Connect: func(ctx context.Context) (storage.Storage, *envelope.Codec, error) {
			o, err := e.fetchOptions(ctx, pdir)
			return o.Store, o.Codec, err
		}}
	opts.StartPrefetch = func(after string, segSize int64) error { return e.startPrefetch(after, segSize, opts.PrefetchDir) }
	return deadlineErr(ctx, archive.Fetch(ctx, name, dest, opts))
}

func (e *env) fetchOptions(ctx context.Context, prefetchDir string) (archive.FetchOptions, error) {
	// Not e.Repo: archive.Fetch checks the marker only when a file is missing,
	// which saves a request on every call of a restore.
	st, err := e.open(ctx, false)
	if err != nil {
		return archive.FetchOptions{}, err
	}
	codec, err := e.Codec(true)
	if err != nil {
		return archive.FetchOptions{}, err
	}
	return archive.FetchOptions{Store: st, Codec: codec, PrefetchDir: prefetchDir, Prefetch: e.cfg.FetchPrefetch, Retry: e.retryPolicy(), Repo: e.cfg.Repo}, nil
}

// startPrefetch runs `pitr wal-prefetch` detached, in its own session, so
// restore_command returns while the next segments download.
func (e *env) startPrefetch(after string, segSize int64, dir string) error {
	// The prefetcher lives as long as the process running restore_command
	// (the server's startup process), and no longer than 20 s idle.
	return e.startDetached("wal-prefetch", after, strconv.FormatInt(segSize, 10), dir, strconv.Itoa(restoreCommandCaller()))
}

// startDetached runs this binary with args (and this call's --config) in a
// session of its own, and leaves it running.
func (e *env) startDetached(args ...string) error {
	self, err := selfForChild()
	if err != nil {
		return err
	}
	if e.configFile != "" {
		args = append([]string{"--config", e.configFile}, args...)
	}
	cmd := exec.Command(self, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// processAlive parses a detached child's PID argument (the process that
// ran archive_command or restore_command) into a check that it still runs.
func processAlive(arg string) (func() bool, error) {
	pid, err := strconv.Atoi(arg)
	if err != nil || pid <= 1 {
		return nil, fmt.Errorf("%w: pid %q", errUsage, arg)
	}
	return func() bool { return syscall.Kill(pid, 0) == nil }, nil
}

// selfForChild is this binary, for a detached child (the prefetcher, the
// resident pusher) to run. A test binary running the command line
// in-process is refused: it would run the whole test suite instead.
func selfForChild() (string, error) {
	self, err := os.Executable()
	if err == nil && strings.HasSuffix(self, ".test") {
		err = errors.New("a test binary starts no detached pitr")
	}
	return self, err
}

// restoreCommandCaller is the process that ran restore_command: PostgreSQL
// runs it through /bin/sh, which (dash) stays our parent and exits with
// us, so the shells between are skipped.
func restoreCommandCaller() int {
	pid := os.Getppid()
	for range 3 {
		comm, ppid, ok := procParent(pid)
		if !ok || ppid <= 1 {
			break
		}
		switch comm {
		case "sh", "dash", "bash", "ash", "busybox":
			pid = ppid
			continue
		}
		break
	}
	return pid
}

// procParent reads a process's name and parent from /proc/PID/stat.
func procParent(pid int) (comm string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	f := strings.Fields(s[end+1:]) // state ppid ...
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return s[open+1 : end], ppid, err == nil
}

// fetchExit maps wal-fetch's errors to the statuses PostgreSQL acts on.
func fetchExit(err error) error {
	if errors.Is(err, archive.ErrNotFound) {
		return exitCodeError{exitNotFound, err}
	}
	return exitCodeError{exitFatal, err}
}

func newWALPrefetchCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "wal-prefetch AFTER SEGMENT_SIZE DIR [PID]",
		Short:  "Keep the segments after the one recovery asks for downloaded into DIR (started by wal-fetch)",
		Hidden: true,
		Args:   usageArgs(cobra.RangeArgs(3, 4)),
		RunE: func(c *cobra.Command, args []string) error {
			size, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("%w: segment size %q", errUsage, args[1])
			}
			opts, err := e.fetchOptions(c.Context(), args[2])
			if err != nil {
				return err
			}
			if len(args) == 4 {
				if opts.While, err = processAlive(args[3]); err != nil {
					return err
				}
			}
			return archive.PrefetchResident(c.Context(), args[0], size, e.cfg.FetchPrefetch, args[2], opts)
		},
	}
}
