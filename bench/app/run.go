package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// result is one measured command: a JSON line of the results file.
type result struct {
	Phase       string  `json:"phase"` // base, first, nightly, wal, restore
	Tool        string  `json:"tool"`  // pitr, script
	Round       int     `json:"round"`
	Title       string  `json:"title"`
	WallS       float64 `json:"wall_s"`
	UserS       float64 `json:"user_s"`
	SysS        float64 `json:"sys_s"`
	MaxRSSKiB   int64   `json:"max_rss_kib"`
	StoredBytes int64   `json:"stored_bytes"` // growth of the repository directories
	InputBytes  int64   `json:"input_bytes,omitempty"`
}

// dirBytes is the size of the regular files under dirs (missing ones count 0).
func dirBytes(dirs []string) (int64, error) {
	var n int64
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(_ string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !e.Type().IsRegular() {
				return nil
			}
			info, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) { // a temp file renamed meanwhile
					return nil
				}
				return err
			}
			n += info.Size()
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// cmdRun runs the command after --, its output to --log, and appends its
// wall time, CPU, peak memory and what the --repo directories gained; with
// --since, the gain is counted from that many bytes instead (what arrived
// while something else ran, e.g. WAL archived during the night).
func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var r result
	var repos multiFlag
	fs.StringVar(&r.Phase, "phase", "", "phase")
	fs.StringVar(&r.Tool, "tool", "", "tool")
	fs.IntVar(&r.Round, "round", 0, "round")
	fs.StringVar(&r.Title, "title", "", "what was run, for the report")
	fs.Int64Var(&r.InputBytes, "input-bytes", 0, "bytes of the application's data")
	fs.Var(&repos, "repo", "repository directory whose growth is counted (repeatable)")
	since := fs.Int64("since", -1, "count growth from this many bytes, not from before the command")
	out := fs.String("out", "", "results file (JSON lines)")
	logPath := fs.String("log", "", "file for the command's output")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		return fmt.Errorf("want run [flags] -- CMD [ARG]")
	}
	before, err := dirBytes(repos)
	if err != nil {
		return err
	}
	if *since >= 0 {
		before = *since
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	start := time.Now()
	err = cmd.Run()
	r.WallS = time.Since(start).Seconds()
	if err != nil {
		return fmt.Errorf("%s %s: %w (see %s)", r.Tool, r.Phase, err, *logPath)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u := harness.UsageOf(ru)
		r.UserS, r.SysS, r.MaxRSSKiB = u.UserS, u.SysS, u.MaxRSSKiB
	}
	after, err := dirBytes(repos)
	if err != nil {
		return err
	}
	r.StoredBytes = after - before
	fmt.Fprintf(os.Stderr, "%s %s round %d: %.1f s, %d bytes stored\n", r.Tool, r.Phase, r.Round, r.WallS, r.StoredBytes)
	return harness.AppendJSON(*out, r)
}
