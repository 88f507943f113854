package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// Result is one JSON line of results.jsonl.
type Result struct {
	Kind  string `json:"kind"` // run, latency, startup; na: a mode that could not run here (Note says why)
	Note  string `json:"note,omitempty"`
	Set   string `json:"set,omitempty"`
	Round int    `json:"round,omitempty"`
	Label string `json:"label"`
	Title string `json:"title,omitempty"`
	Cmd   string `json:"cmd,omitempty"`

	// run
	N         int     `json:"n,omitempty"`
	WallS     float64 `json:"wall_s,omitempty"`  // first call start to last call exit
	DrainS    float64 `json:"drain_s,omitempty"` // until background processes exited too
	UserS     float64 `json:"user_s,omitempty"`
	SysS      float64 `json:"sys_s,omitempty"`
	MaxRSSKiB int64   `json:"max_rss_kib,omitempty"` // largest single process
	MinIOCPUS float64 `json:"minio_cpu_s,omitempty"`
	// OthersCPUS is the CPU time the rest of the machine used during the
	// run (all CPUs busy time minus ours and MinIO's): other people's work
	// on a shared machine, which slows every tool.
	OthersCPUS float64 `json:"others_cpu_s,omitempty"`
	NumCPU     int     `json:"ncpu,omitempty"`
	InputBytes int64   `json:"input_bytes,omitempty"`
	Stored     int64   `json:"stored_bytes,omitempty"`
	Objects    int     `json:"objects,omitempty"`
	Retries    int     `json:"retries,omitempty"`
	// BusyFrac, when set, is how busy (CPU or I/O) the machine still was
	// when the run started after waiting --idle-max for it to be idle.
	BusyFrac float64 `json:"busy_frac,omitempty"`

	// run: per-call latency; latency and startup: every sample
	CallsMS []float64 `json:"calls_ms,omitempty"`
	NextMS  []float64 `json:"next_ms,omitempty"` // latency --next: the call after
}

var segName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// segments returns the first n WAL segment names in dir, in archive order.
func segments(dir string, n int) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if segName.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) < n {
		return nil, fmt.Errorf("%s holds %d segments, want %d", dir, len(names), n)
	}
	return names[:n], nil
}

// fakePGData makes dir/pgdata as the archiver sees it: global/pg_control and
// PG_VERSION copied from pgcontrol (pgBackRest reads them), the segments
// hard-linked into pg_wal and read once (see warm), and a .ready file for
// each.
func fakePGData(dir, segdir, pgcontrol string, names []string) (string, error) {
	return fakePGDataReady(dir, segdir, pgcontrol, names, len(names))
}

// markReady writes the .ready files of names.
func markReady(pgdata string, names []string) error {
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(pgdata, "pg_wal", "archive_status", n+".ready"), nil, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// endResident removes the socket of the resident pusher a pitr wal-push
// started in pgdata's spool, which ends it as a stopping server (its
// archiver gone) would; otherwise it stays its idle time, and ReapAll
// waits for it.
func endResident(pgdata string) {
	_ = os.Remove(filepath.Join(pgdata, "pg_wal", "pitr", "push.sock"))
}

// fakePGDataReady is fakePGData with .ready files for the first ready
// names only.
func fakePGDataReady(dir, segdir, pgcontrol string, names []string, ready int) (string, error) {
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	pgdata := filepath.Join(dir, "pgdata")
	status := filepath.Join(pgdata, "pg_wal", "archive_status")
	if err := os.MkdirAll(status, 0o700); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(pgdata, "global"), 0o700); err != nil {
		return "", err
	}
	if pgcontrol != "" {
		for _, f := range []string{"global/pg_control", "PG_VERSION"} {
			if err := copyFile(filepath.Join(pgcontrol, f), filepath.Join(pgdata, f)); err != nil {
				return "", err
			}
		}
	}
	for _, n := range names {
		dst := filepath.Join(pgdata, "pg_wal", n)
		if err := os.Link(filepath.Join(segdir, n), dst); err != nil {
			if err := copyFile(filepath.Join(segdir, n), dst); err != nil {
				return "", err
			}
		}
	}
	if err := warm(filepath.Join(pgdata, "pg_wal"), names); err != nil {
		return "", err
	}
	if err := markReady(pgdata, names[:ready]); err != nil {
		return "", err
	}
	return pgdata, nil
}

// warm reads the segments once, so that every mode starts with them in
// the page cache. The archiver's segments are there too: PostgreSQL has
// just written them. Without it, whichever mode first ran after other
// work read 2 GiB from disk in its timed run: 21.5 s against 4.4 s for
// the same 128 segments after `echo 3 > /proc/sys/vm/drop_caches`.
func warm(dir string, names []string) error {
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// expand fills in archive_command's %p (path relative to the data
// directory) and %f (file name), plus the harness's own %D (absolute data
// directory) and %i (iteration).
func expand(tmpl, pgdata, name string, i int) string {
	r := strings.NewReplacer("%p", "pg_wal/"+name, "%f", name, "%D", pgdata, "%i", strconv.Itoa(i), "%%", "%")
	return r.Replace(tmpl)
}

// archive runs cmd the way PostgreSQL's archiver does (system(): /bin/sh -c,
// in the data directory), retrying a failure up to twice, then marks the
// segment .done. It returns the successful call's duration.
func archive(cmd, pgdata, name string, log io.Writer) (time.Duration, int, error) {
	retries := 0
	for {
		c := exec.Command("/bin/sh", "-c", cmd)
		c.Dir, c.Stdout, c.Stderr = pgdata, log, log
		start := time.Now()
		err := c.Run()
		d := time.Since(start)
		if err == nil {
			status := filepath.Join(pgdata, "pg_wal", "archive_status", name)
			return d, retries, os.Rename(status+".ready", status+".done")
		}
		fmt.Fprintf(log, "walpush: archive %s failed: %v\n", name, err)
		if retries == 2 {
			return d, retries, fmt.Errorf("archive_command failed 3 times for %s: %v (see the run's log)", name, err)
		}
		retries++
		time.Sleep(time.Second) // PostgreSQL waits 1 s between attempts
	}
}

// appendResult prints r's summary and appends it to the results file at path.
func appendResult(path string, r Result) error {
	fmt.Printf("%-20s %-8s round %d: %s\n", r.Label, r.Set, r.Round, summary(r))
	return harness.AppendJSON(path, r)
}

func summary(r Result) string {
	switch r.Kind {
	case "na":
		return "not available: " + r.Note
	case "run":
		return fmt.Sprintf("%.2f s (%.1f ms/seg), cpu %.2f s, max rss %.1f MiB, minio cpu %.2f s, stored %.1f%%, others busy %.0f%%",
			r.WallS, 1000*r.WallS/float64(r.N), r.UserS+r.SysS, float64(r.MaxRSSKiB)/1024, r.MinIOCPUS,
			100*float64(r.Stored)/float64(r.InputBytes), 100*othersShare(r))
	default:
		s := fmt.Sprintf("median %.1f ms of %d", harness.Median(r.CallsMS), len(r.CallsMS))
		if len(r.NextMS) > 0 {
			s += fmt.Sprintf("; next call median %.1f ms", harness.Median(r.NextMS))
		}
		return s
	}
}

// othersShare is the fraction of the machine's CPU capacity others used
// during a run (measured until background processes exited).
func othersShare(r Result) float64 {
	if r.NumCPU == 0 || r.DrainS == 0 {
		return 0
	}
	return r.OthersCPUS / (r.DrainS * float64(r.NumCPU))
}

type common struct {
	label, title, set, segdir, dir, pgcontrol, out string
	round                                          int
}

func (c *common) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.label, "label", "", "short name of the mode")
	fs.StringVar(&c.title, "title", "", "display name of the mode")
	fs.StringVar(&c.set, "set", "", "name of the segment set")
	fs.IntVar(&c.round, "round", 0, "round number")
	fs.StringVar(&c.segdir, "segdir", "", "directory of cached WAL segments")
	fs.StringVar(&c.dir, "dir", "", "scratch directory for this run (wiped)")
	fs.StringVar(&c.pgcontrol, "pgcontrol", "", "directory with global/pg_control and PG_VERSION of the cluster that wrote the segments")
	fs.StringVar(&c.out, "out", "", "results file to append a JSON line to")
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var c common
	c.flags(fs)
	n := fs.Int("n", 256, "segments to archive")
	tmpl := fs.String("command", "", "archive_command (%p, %f; %D data directory)")
	bgWait := fs.Duration("bg-wait", 2*time.Minute, "how long to wait for background processes after the last call")
	miniopid := fs.Int("minio-pid", 0, "MinIO's pid, to report its CPU time")
	stored := fs.String("stored", "", "where the archive lands, to report its size: s3://bucket/prefix or a directory")
	daemonCmd := fs.String("daemon", "", "resident process to start first (its CPU and RSS are counted) and stop after the last call")
	daemonSock := fs.String("daemon-socket", "", "the socket --daemon creates; when it never does, the mode is recorded as not available")
	idleMax := fs.Duration("idle-max", 30*time.Second, "longest wait for an idle machine (CPU and I/O) before the first call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if strings.TrimSpace(*tmpl) == "" {
		return errors.New("no --command")
	}
	if err := harness.BecomeSubreaper(); err != nil {
		return err
	}
	names, err := segments(c.segdir, *n)
	if err != nil {
		return err
	}
	pgdata, err := fakePGData(c.dir, c.segdir, c.pgcontrol, names)
	if err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(c.dir, "archive.log"))
	if err != nil {
		return err
	}
	defer log.Close()

	res := Result{Kind: "run", Set: c.set, Round: c.round, Label: c.label, Title: c.title, Cmd: *tmpl, N: len(names)}
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(pgdata, "pg_wal", name))
		if err != nil {
			return err
		}
		res.InputBytes += fi.Size()
	}
	var d *daemon
	if *daemonCmd != "" {
		if d, err = startDaemon(*daemonCmd, *daemonSock, log); errors.Is(err, errNoDaemon) {
			fmt.Fprintf(os.Stderr, "walpush: %s: %v: not available\n", c.label, err)
			res.Kind, res.Note = "na", err.Error()
			return appendResult(c.out, res)
		} else if err != nil {
			return err
		}
	}
	// The last mode's deletes (4 GiB of cp's copies, MinIO's objects)
	// and write-back would otherwise land in this one's fsyncs.
	syscall.Sync()
	if frac, busy, err := harness.WaitIdle(*idleMax); err != nil {
		return err
	} else if busy {
		res.BusyFrac = frac
	}
	meter, err := harness.StartCPU(*miniopid)
	if err != nil {
		return err
	}
	start := time.Now()
	for _, name := range names {
		took, retries, err := archive(expand(*tmpl, pgdata, name, 0), pgdata, name, log)
		res.Retries += retries
		if err != nil {
			return err
		}
		res.CallsMS = append(res.CallsMS, float64(took.Microseconds())/1000)
	}
	res.WallS = time.Since(start).Seconds()
	if d != nil {
		if err := d.stop(); err != nil {
			return fmt.Errorf("stop daemon: %w", err)
		}
	}
	endResident(pgdata)
	if err := harness.ReapAll(*bgWait); err != nil {
		return err
	}
	res.DrainS = time.Since(start).Seconds()
	u, err := harness.Children()
	if err != nil {
		return err
	}
	res.UserS, res.SysS, res.MaxRSSKiB = u.UserS, u.SysS, u.MaxRSSKiB
	var busy float64
	if res.MinIOCPUS, busy, err = meter.Stop(); err != nil {
		return err
	}
	res.NumCPU = runtime.NumCPU()
	res.OthersCPUS = max(0, busy-res.UserS-res.SysS-res.MinIOCPUS)
	if err := measureStored(*stored, &res); err != nil {
		return err
	}
	return appendResult(c.out, res)
}

func measureStored(where string, res *Result) error {
	switch {
	case where == "":
		return nil
	case strings.HasPrefix(where, "s3://"):
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(where, "s3://"), "/")
		var err error
		res.Stored, res.Objects, err = harness.StoredS3(bucket, prefix)
		return err
	default:
		return filepath.WalkDir(where, func(_ string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			res.Stored += fi.Size()
			res.Objects++
			return nil
		})
	}
}

// cmdLatency times single archive_command calls, each in a fresh data
// directory: iteration i uses segments i*(ahead+2) on. The first is pushed
// untimed by --warmup (it sets up whatever a long-running archiver would
// already have, e.g. pitr's spool and resident pusher) while it is the only
// .ready one, the second is timed with the other `ahead` segments marked
// .ready behind it, and with --next the third is
// timed too (the call after, which look-ahead may have made cheap).
func cmdLatency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	var c common
	c.flags(fs)
	iters := fs.Int("n", 20, "timed calls")
	ahead := fs.Int("ahead", 7, "other .ready segments behind the timed one")
	tmpl := fs.String("command", "", "archive_command (%p, %f; %D data directory, %i iteration)")
	warmup := fs.String("warmup", "", "archive_command for the untimed first segment (default: --command)")
	next := fs.Bool("next", false, "also time the call after")
	daemonCmd := fs.String("daemon", "", "resident process started before each iteration's warm-up call (%i expanded) and stopped after it")
	daemonSock := fs.String("daemon-socket", "", "the socket --daemon creates; when it never does, the probe is recorded as not available")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if strings.TrimSpace(*tmpl) == "" {
		return errors.New("no --command")
	}
	if *warmup == "" {
		*warmup = *tmpl
	}
	if err := harness.BecomeSubreaper(); err != nil {
		return err
	}
	per := *ahead + 2
	all, err := segments(c.segdir, *iters*per)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(c.dir, "latency.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	res := Result{Kind: "latency", Set: c.set, Round: c.round, Label: c.label, Title: c.title, Cmd: *tmpl}
	for i := 0; i < *iters; i++ {
		names := all[i*per : (i+1)*per]
		// Only the warm-up's segment is .ready at first: its look-ahead
		// (or a daemon's) must not push the timed one ahead of its call.
		pgdata, err := fakePGDataReady(filepath.Join(c.dir, "iter"), c.segdir, c.pgcontrol, names, 1)
		if err != nil {
			return err
		}
		var dm *daemon
		if *daemonCmd != "" {
			if dm, err = startDaemon(expand(*daemonCmd, pgdata, names[0], i), *daemonSock, log); errors.Is(err, errNoDaemon) {
				fmt.Fprintf(os.Stderr, "walpush: %s: %v: not available\n", c.label, err)
				res.Kind, res.Note = "na", err.Error()
				return appendResult(c.out, res)
			} else if err != nil {
				return err
			}
		}
		if _, _, err := archive(expand(*warmup, pgdata, names[0], i), pgdata, names[0], log); err != nil {
			return err
		}
		if err := markReady(pgdata, names[1:]); err != nil {
			return err
		}
		d, _, err := archive(expand(*tmpl, pgdata, names[1], i), pgdata, names[1], log)
		if err != nil {
			return err
		}
		res.CallsMS = append(res.CallsMS, float64(d.Microseconds())/1000)
		if *next {
			d, _, err := archive(expand(*tmpl, pgdata, names[2], i), pgdata, names[2], log)
			if err != nil {
				return err
			}
			res.NextMS = append(res.NextMS, float64(d.Microseconds())/1000)
		}
		if dm != nil {
			if err := dm.stop(); err != nil {
				return fmt.Errorf("stop daemon: %w", err)
			}
		}
		endResident(pgdata)
		if err := harness.ReapAll(time.Minute); err != nil {
			return err
		}
	}
	return appendResult(c.out, res)
}

// cmdStartup times process start-up: each LABEL=COMMAND is split on spaces
// and run without a shell, n times, interleaved.
func cmdStartup(args []string) error {
	fs := flag.NewFlagSet("startup", flag.ExitOnError)
	n := fs.Int("n", 50, "runs of each command")
	round := fs.Int("round", 0, "round number")
	out := fs.String("out", "", "results file to append JSON lines to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type probe struct {
		label string
		argv  []string
		res   Result
	}
	var probes []*probe
	for _, a := range fs.Args() {
		label, cmd, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("want LABEL=COMMAND, got %q", a)
		}
		probes = append(probes, &probe{label: label, argv: strings.Fields(cmd),
			res: Result{Kind: "startup", Round: *round, Label: label, Cmd: cmd}})
	}
	for i := 0; i < *n; i++ {
		for _, p := range probes {
			c := exec.Command(p.argv[0], p.argv[1:]...)
			start := time.Now()
			if err := c.Run(); err != nil {
				return fmt.Errorf("%s: %w", p.label, err)
			}
			p.res.CallsMS = append(p.res.CallsMS, float64(time.Since(start).Microseconds())/1000)
		}
	}
	for _, p := range probes {
		if err := appendResult(*out, p.res); err != nil {
			return err
		}
	}
	return nil
}
