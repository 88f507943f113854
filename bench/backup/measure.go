package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// Result is one JSON line of results.jsonl.
type Result struct {
	Kind  string `json:"kind"`            // run, recover, stored
	Phase string `json:"phase,omitempty"` // backup, restore, pitr
	Tool  string `json:"tool"`
	Title string `json:"title,omitempty"`
	Round int    `json:"round,omitempty"`
	Cmd   string `json:"cmd,omitempty"`

	WallS     float64 `json:"wall_s,omitempty"`
	UserS     float64 `json:"user_s,omitempty"`
	SysS      float64 `json:"sys_s,omitempty"`
	MaxRSSKiB int64   `json:"max_rss_kib,omitempty"`
	// MinIOCPUS is MinIO's CPU time during the measurement, MachineCPUS
	// the busy CPU time of the whole machine (every process).
	MinIOCPUS   float64 `json:"minio_cpu_s,omitempty"`
	MachineCPUS float64 `json:"machine_cpu_s,omitempty"`
	// ServerCPUS is the PostgreSQL server's CPU time during a backup (the
	// walsender building BASE_BACKUP's tar, or the backend and checkpointer).
	ServerCPUS float64 `json:"server_cpu_s,omitempty"`

	StoredBytes int64 `json:"stored_bytes,omitempty"`
	Objects     int   `json:"objects,omitempty"`

	// Recovery, from the server log's timestamps.
	Segments int     `json:"segments,omitempty"` // "restored log file" lines
	StartS   float64 `json:"start_s,omitempty"`  // server start until "redo starts at"
	RedoS    float64 `json:"redo_s,omitempty"`   // "redo starts at" until "redo done at"
	FinishS  float64 `json:"finish_s,omitempty"` // "redo done at" until "ready to accept connections"
	Stopping string  `json:"stopping,omitempty"` // the "recovery stopping ..." line

	// pitr backup, from its log: start until "backup started" (connect,
	// checkpoint), until the last "backup part stored" (streaming), until
	// "backup complete" (waiting for archive_command, writing the entry).
	CheckpointS float64 `json:"checkpoint_s,omitempty"`
	StreamS     float64 `json:"stream_s,omitempty"`
	WALWaitS    float64 `json:"wal_wait_s,omitempty"`

	BusyFrac float64 `json:"busy_frac,omitempty"` // kind busy: the machine was this busy before a measurement
}

// appendResult prints r's summary and appends it to the results file at path.
func appendResult(path string, r Result) error {
	fmt.Printf("%-8s %-22s round %d: %s\n", r.Phase, r.Tool, r.Round, summary(r))
	return harness.AppendJSON(path, r)
}

// measureCPU starts measuring MinIO's and the machine's CPU; the function
// it returns records them in r.
func measureCPU(minioPID int) (func(r *Result) error, error) {
	m, err := harness.StartCPU(minioPID)
	if err != nil {
		return nil, err
	}
	return func(r *Result) error {
		var err error
		r.MinIOCPUS, r.MachineCPUS, err = m.Stop()
		return err
	}, nil
}

func summary(r Result) string {
	switch r.Kind {
	case "busy":
		return fmt.Sprintf("machine %.0f%% busy before the next measurement", 100*r.BusyFrac)
	case "stored":
		return fmt.Sprintf("%.1f MiB in %d objects per backup", mib(r.StoredBytes), r.Objects)
	case "recover":
		return fmt.Sprintf("%.2f s to ready (start %.2f, redo %.2f, finish %.2f), %d segments restored, cpu %.2f s, minio cpu %.2f s, machine cpu %.2f s",
			r.WallS, r.StartS, r.RedoS, r.FinishS, r.Segments, r.UserS+r.SysS, r.MinIOCPUS, r.MachineCPUS)
	}
	s := fmt.Sprintf("%.2f s, cpu %.2f s (user %.2f, sys %.2f), max rss %.1f MiB, minio cpu %.2f s, server cpu %.2f s, machine cpu %.2f s",
		r.WallS, r.UserS+r.SysS, r.UserS, r.SysS, float64(r.MaxRSSKiB)/1024, r.MinIOCPUS, r.ServerCPUS, r.MachineCPUS)
	if r.StoredBytes > 0 {
		s += fmt.Sprintf(", output %.1f MiB", mib(r.StoredBytes))
	}
	if r.StreamS > 0 {
		s += fmt.Sprintf(" (pitr: checkpoint %.2f s, stream %.2f s, wait for WAL %.2f s)", r.CheckpointS, r.StreamS, r.WALWaitS)
	}
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

type common struct{ harness.Common }

func (c *common) flags(fs *flag.FlagSet) { c.Flags(fs, "backup, restore or pitr") }

func (c *common) result(kind string) Result {
	return Result{Kind: kind, Phase: c.Phase, Tool: c.Tool, Title: c.Title, Round: c.Round}
}

// cmdRun runs one command and records its wall time and the CPU time and
// peak RSS of it and every descendant (it becomes their subreaper, so
// processes that detach are counted too once they exit).
func cmdRun(args []string) error {
	fl := flag.NewFlagSet("run", flag.ExitOnError)
	var c common
	c.flags(fl)
	logPath := fl.String("log", "", "file for the command's stdout and stderr")
	outDir := fl.String("output-dir", "", "directory whose size to record as the output (local backups)")
	pitrLog := fl.Bool("pitr-backup-log", false, "the command is pitr backup logging JSON at info level into --log: record its phases")
	serverPID := fl.Int("server-pid", 0, "the postmaster's pid, to report the server's CPU time")
	if err := fl.Parse(args); err != nil {
		return err
	}
	argv := fl.Args()
	if len(argv) == 0 {
		return errors.New("no command")
	}
	if err := harness.BecomeSubreaper(); err != nil {
		return err
	}
	var out io.Writer = os.Stderr
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	res := c.result("run")
	res.Cmd = strings.Join(argv, " ")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	stopCPU, err := measureCPU(c.MinioPID)
	if err != nil {
		return err
	}
	server0, err := harness.TreeCPU(*serverPID)
	if err != nil {
		return err
	}
	start := time.Now()
	runErr := cmd.Run()
	res.WallS = time.Since(start).Seconds()
	if err := stopCPU(&res); err != nil {
		return err
	}
	server1, err := harness.TreeCPU(*serverPID)
	if err != nil {
		return err
	}
	res.ServerCPUS = server1 - server0
	if runErr != nil {
		return fmt.Errorf("%s: %w (output in %s)", res.Cmd, runErr, *logPath)
	}
	if err := harness.ReapAll(time.Minute); err != nil {
		return err
	}
	u, err := harness.Children()
	if err != nil {
		return err
	}
	res.UserS, res.SysS, res.MaxRSSKiB = u.UserS, u.SysS, u.MaxRSSKiB
	if *pitrLog {
		if err := pitrBackupPhases(*logPath, start, &res); err != nil {
			return err
		}
	}
	if *outDir != "" {
		err := filepath.WalkDir(*outDir, func(_ string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fi, err := d.Info()
			if err == nil {
				res.StoredBytes += fi.Size()
				res.Objects++
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return appendResult(c.Out, res)
}

// pitrBackupPhases reads pitr backup's JSON log.
func pitrBackupPhases(path string, start time.Time, r *Result) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var started, lastPart, complete time.Time
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Time    time.Time `json:"time"`
			Message string    `json:"message"`
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		switch e.Message {
		case "backup started":
			started = e.Time
		case "backup part stored":
			lastPart = e.Time
		case "backup complete":
			complete = e.Time
		}
	}
	if started.IsZero() || lastPart.IsZero() || complete.IsZero() {
		// Another backup method may log other messages: the phases are extra.
		fmt.Fprintf(os.Stderr, "backup: %s: no backup started / part stored / complete messages; no phases recorded\n", path)
		return nil
	}
	r.CheckpointS, r.StreamS, r.WALWaitS = started.Sub(start).Seconds(), lastPart.Sub(started).Seconds(), complete.Sub(lastPart).Seconds()
	return nil
}

// Server log messages (PostgreSQL 15) that mark the phases of recovery.
const (
	msgRedoStarts = "redo starts at "
	msgRedoDone   = "redo done at "
	msgStopping   = "recovery stopping "
	msgRestored   = "restored log file "
	msgReady      = "database system is ready to accept connections"
)

// failure marks log lines after which the server will not finish recovery.
var failures = []string{
	"database system is shut down",
	"startup process (PID",
	"aborting startup due to startup process failure",
	"recovery ended before configured recovery target was reached",
}

// cmdRecover starts a server on a prepared data directory (restored backup,
// recovery.signal, recovery settings) and times it from launch until the
// log says it accepts connections as a primary, i.e. recovery ended and the
// server was promoted. It then stops the server (immediate) and waits for
// every descendant, restore_command's background prefetchers included, so
// the CPU time covers the server and all restore_command processes.
func cmdRecover(args []string) error {
	fs := flag.NewFlagSet("recover", flag.ExitOnError)
	var c common
	c.flags(fs)
	pgdata := fs.String("pgdata", "", "prepared data directory")
	pgbin := fs.String("pgbin", "/usr/lib/postgresql/15/bin", "PostgreSQL binaries")
	port := fs.Int("port", 0, "port for the server")
	sockdir := fs.String("socket-dir", "/tmp", "unix_socket_directories for the server")
	logPath := fs.String("log", "", "server log file")
	user := fs.String("user", "postgres", "run pg_ctl as this user (when root)")
	target := fs.String("target-name", "", "restore point recovery must stop at")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pgdata == "" || *port == 0 || *logPath == "" {
		return errors.New("need --pgdata, --port and --log")
	}
	if err := harness.BecomeSubreaper(); err != nil {
		return err
	}
	os.Remove(*logPath)
	// archive_mode off: the promoted server must not archive its new
	// timeline into the repositories the next rounds recover from.
	opts := fmt.Sprintf("-p %d -c listen_addresses='' -c unix_socket_directories='%s' -c archive_mode=off -c log_line_prefix='%%m [%%p] '", *port, *sockdir)
	pgctl := func(a ...string) *exec.Cmd {
		argv := append([]string{filepath.Join(*pgbin, "pg_ctl"), "-D", *pgdata}, a...)
		if os.Geteuid() == 0 {
			argv = append([]string{"runuser", "-u", *user, "--"}, argv...)
		}
		return exec.Command(argv[0], argv[1:]...)
	}
	res := c.result("recover")
	stopCPU, err := measureCPU(c.MinioPID)
	if err != nil {
		return err
	}
	start := time.Now()
	startCmd := pgctl("-l", *logPath, "-W", "-o", opts, "start")
	if out, err := startCmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	stop := func() {
		if out, err := pgctl("-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "pg_ctl stop: %v: %s\n", err, out)
		}
	}
	lr := &logReader{path: *logPath}
	deadline := start.Add(*timeout)
	for {
		ready, failed, err := lr.poll()
		if err != nil {
			stop()
			return err
		}
		if ready {
			break
		}
		if failed != "" {
			stop()
			return fmt.Errorf("recovery failed: %s (log %s)", failed, *logPath)
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("recovery did not end within %v (log %s)", *timeout, *logPath)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.WallS = time.Since(start).Seconds()
	if err := stopCPU(&res); err != nil {
		return err
	}
	stop()
	if err := harness.ReapAll(2 * time.Minute); err != nil {
		return err
	}
	u, err := harness.Children()
	if err != nil {
		return err
	}
	res.UserS, res.SysS = u.UserS, u.SysS
	if err := lr.fill(&res); err != nil {
		return fmt.Errorf("%w (log %s)", err, *logPath)
	}
	if *target != "" && !strings.Contains(res.Stopping, `at restore point "`+*target+`"`) {
		return fmt.Errorf("recovery did not stop at restore point %q: %q (log %s)", *target, res.Stopping, *logPath)
	}
	return appendResult(c.Out, res)
}

// logReader follows a server log written with log_line_prefix '%m [%p] '.
type logReader struct {
	path  string
	off   int64
	part  string
	lines []string
}

func (l *logReader) poll() (ready bool, failed string, err error) {
	f, err := os.Open(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	defer f.Close()
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		return false, "", err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return false, "", err
	}
	l.off += int64(len(b))
	text := l.part + string(b)
	i := strings.LastIndexByte(text, '\n')
	if i < 0 {
		l.part = text
		return false, "", nil
	}
	l.part = text[i+1:]
	for _, line := range strings.Split(text[:i], "\n") {
		l.lines = append(l.lines, line)
		if strings.Contains(line, msgReady) {
			ready = true
		}
		for _, f := range failures {
			if strings.Contains(line, f) && failed == "" {
				failed = line
			}
		}
	}
	return ready, failed, nil
}

// fill takes the phases of recovery from the log's timestamps.
func (l *logReader) fill(r *Result) error {
	var first, redo, done, ready time.Time
	for _, line := range l.lines {
		t, ok := lineTime(line)
		if !ok {
			continue
		}
		if first.IsZero() {
			first = t
		}
		switch {
		case strings.Contains(line, msgRedoStarts):
			redo = t
		case strings.Contains(line, msgRedoDone):
			done = t
		case strings.Contains(line, msgStopping):
			_, r.Stopping, _ = strings.Cut(line, msgStopping)
		case strings.Contains(line, msgRestored):
			r.Segments++
		case strings.Contains(line, msgReady):
			ready = t
		}
	}
	if redo.IsZero() || done.IsZero() || ready.IsZero() {
		return errors.New("log lacks redo starts / redo done / ready lines")
	}
	r.StartS, r.RedoS, r.FinishS = redo.Sub(first).Seconds(), done.Sub(redo).Seconds(), ready.Sub(done).Seconds()
	return nil
}

// lineTime parses the %m prefix: "2026-11-22 14:01:00.123 UTC".
func lineTime(line string) (time.Time, bool) {
	if len(line) < 23 {
		return time.Time{}, false
	}
	t, err := time.Parse("2006-01-02 15:04:05.000", line[:23])
	return t, err == nil
}

// cmdIdle waits until the machine's CPUs are less than 10 % busy over half
// a second, at most --max. When they never are, it says so and records it,
// and the measurement goes ahead.
func cmdIdle(args []string) error {
	fl := flag.NewFlagSet("idle", flag.ExitOnError)
	maxWait := fl.Duration("max", 30*time.Second, "give up waiting after")
	out := fl.String("out", "", "results file to record a busy machine in")
	if err := fl.Parse(args); err != nil {
		return err
	}
	frac, busy, err := harness.WaitIdle(*maxWait)
	if err != nil || !busy {
		return err
	}
	return appendResult(*out, Result{Kind: "busy", BusyFrac: frac})
}
