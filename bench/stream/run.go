package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// Phase is one JSON line of results: one load, receivers side by side.
type Phase struct {
	Phase, Title, Load string
	Synchronous        bool // the server waits for pitr on commit
	LoadStart          time.Time
	LoadS              float64 // pgbench's run
	TPS, LatencyMS     float64 // pgbench's report (latency includes the schedule lag)
	LagMS              float64 // pgbench's schedule lag: how far behind -R it fell
	CommitMS           []float64
	MinIOCPUPct        float64 // during the load, % of one core
	BusyPct            float64 // whole machine during the load, % of its capacity
	Recv               []Recv
}

// Recv is one receiver's figures in a phase.
type Recv struct {
	Label, App, Cmd string
	DurableS        []float64 // per probe: commit returned → reported flushed
	ProbeAtS        []float64 // when each probe's commit returned, seconds into the load
	Unresolved      int       // probes never reported flushed
	CPUPct          float64   // during the load, % of one core
	CPUS, WallS     float64   // whole life, from wait4
	MaxRSSKiB       int64
	// pitr only, from its log and the store.
	WALBytes, Uploaded, Segments int64
	WholeBytes                   int64
	WholeObjects, LeftoverChunks int
	// Segments sealed (chunks kept, no whole upload) and what they would
	// have taken stored whole (the log's "whole"): with WholeBytes, the
	// compressed WAL.
	Sealed                 int
	SealedWhole            int64
	ChunkStored            []float64 // bytes
	ChunkTookMS, SegTookMS []float64
	Warnings               []string
}

type recvFlag []string

func (r *recvFlag) String() string     { return strings.Join(*r, ", ") }
func (r *recvFlag) Set(v string) error { *r = append(*r, v); return nil }

type running struct {
	Recv
	cmd    *exec.Cmd
	log    string
	store  string
	mu     sync.Mutex
	queue  []probe
	flushd int64
}

// loadStart is when the load began (set before the probe's first commit).
var loadStart time.Time

type probe struct {
	at  time.Time
	lsn int64
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var p Phase
	var recvs recvFlag
	fs.StringVar(&p.Phase, "phase", "", "short name")
	fs.StringVar(&p.Title, "title", "", "display name")
	fs.BoolVar(&p.Synchronous, "synchronous", false, "the server lists pitr in synchronous_standby_names")
	dsn := fs.String("dsn", os.Getenv("PITR_PG_DSN"), "server to probe")
	fs.StringVar(&p.Load, "pgbench", "", "load command (run through /bin/sh)")
	fs.Var(&recvs, "recv", "LABEL|APPLICATION_NAME|LOG|S3 PREFIX OR -|COMMAND (repeatable)")
	interval := fs.Duration("probe-interval", 100*time.Millisecond, "between probe commits")
	minioPID := fs.Int("minio-pid", 0, "MinIO's pid, for its CPU")
	out := fs.String("out", "", "results file to append to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()

	db, err := pgx.Connect(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, "CREATE TABLE IF NOT EXISTS stream_probe (at timestamptz DEFAULT now())"); err != nil {
		return err
	}
	var rs []*running
	for _, spec := range recvs {
		f := strings.SplitN(spec, "|", 5)
		if len(f) != 5 {
			return fmt.Errorf("bad --recv %q", spec)
		}
		r := &running{Recv: Recv{Label: f[0], App: f[1], Cmd: f[4]}, log: f[2], store: f[3]}
		lf, err := os.Create(r.log)
		if err != nil {
			return err
		}
		r.cmd = exec.Command("/bin/sh", "-c", "exec "+r.Cmd)
		r.cmd.Stdout, r.cmd.Stderr = lf, lf
		if err := r.cmd.Start(); err != nil {
			return err
		}
		lf.Close()
		defer func() { _ = r.cmd.Process.Kill() }() // an early return: the receiver may be gone already
		rs = append(rs, r)
	}
	start := time.Now()
	if err := waitFlushed(ctx, db, rs, 0, time.Minute); err != nil {
		return err
	}

	// The load, with the probe and the poller beside it.
	probeCtx, stopProbe := context.WithCancel(ctx)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	var wg sync.WaitGroup
	var probeErr, pollErr error
	cpu0, minio0, busy0 := cpus(rs, *minioPID)
	t0 := time.Now()
	loadStart, p.LoadStart = t0, t0
	wg.Add(2)
	go func() { defer wg.Done(); probeErr = probeLoop(probeCtx, *dsn, *interval, rs, &p) }()
	go func() { defer wg.Done(); pollErr = pollLoop(pollCtx, *dsn, rs) }()
	load := exec.Command("/bin/sh", "-c", p.Load)
	loadOut, err := load.CombinedOutput()
	p.LoadS = time.Since(t0).Seconds()
	cpu1, minio1, busy1 := cpus(rs, *minioPID)
	stopProbe()
	if err != nil {
		return fmt.Errorf("pgbench: %v\n%s", err, loadOut)
	}
	os.Stderr.Write(loadOut)
	p.TPS = grabFloat(loadOut, `tps = ([0-9.]+)`)
	p.LatencyMS = grabFloat(loadOut, `latency average = ([0-9.]+) ms`)
	p.LagMS = grabFloat(loadOut, `schedule lag: avg ([0-9.]+)`)
	for i, r := range rs {
		r.CPUPct = 100 * (cpu1[i] - cpu0[i]) / p.LoadS
	}
	p.MinIOCPUPct = 100 * (minio1 - minio0) / p.LoadS
	p.BusyPct = 100 * (busy1 - busy0) / p.LoadS / float64(numCPU())

	// End the segment, so every receiver stores the last one whole (and
	// pg_receivewal fsyncs it), and wait for all to report it flushed.
	var end, segSize int64
	if err := db.QueryRow(ctx, "SELECT (pg_switch_wal() - '0/0')::bigint, setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'").Scan(&end, &segSize); err != nil {
		return err
	}
	end = (end + segSize - 1) / segSize * segSize
	waitErr := waitFlushed(ctx, db, rs, end, 90*time.Second)
	time.Sleep(50 * time.Millisecond)
	stopPoll()
	wg.Wait()
	for _, r := range rs {
		if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("stop %s: %w", r.Label, err)
		}
	}
	for _, r := range rs {
		// A receiver that fails still has its numbers; say so beside them.
		// pg_receivewal 15 dies of the SIGTERM; that is its normal end here.
		if err := r.cmd.Wait(); err != nil && !killedBy(r.cmd, syscall.SIGTERM) {
			fmt.Fprintf(os.Stderr, "%s %s: exited: %v (see %s)\n", p.Phase, r.Label, err, r.log)
		}
		r.WallS = time.Since(start).Seconds()
		if ru, ok := r.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			u := harness.UsageOf(ru)
			r.CPUS = u.UserS + u.SysS
			r.MaxRSSKiB = u.MaxRSSKiB
		}
		r.Unresolved = len(r.queue)
		if err := readPitrLog(r); err != nil {
			return err
		}
		if r.store != "-" {
			if err := walObjects(r.store, &r.Recv); err != nil {
				return err
			}
		}
		p.Recv = append(p.Recv, r.Recv)
	}
	// Fresh slots next phase: drop them once their walsenders are gone.
	for i, active := 0, true; active && i < 100; i++ {
		if err := db.QueryRow(ctx, "SELECT count(*) > 0 FROM pg_replication_slots WHERE active").Scan(&active); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := db.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active"); err != nil {
		return err
	}
	for _, e := range []error{probeErr, pollErr, waitErr} {
		if e != nil {
			return e
		}
	}
	for _, r := range p.Recv {
		fmt.Fprintf(os.Stderr, "%s %s: durable p50 %.3f s p99 %.3f s max %.3f s (%d probes, %d unresolved), cpu %.1f%%, rss %.1f MiB\n",
			p.Phase, r.Label, percentile(r.DurableS, .5), percentile(r.DurableS, .99), percentile(r.DurableS, 1),
			len(r.DurableS), r.Unresolved, r.CPUPct, float64(r.MaxRSSKiB)/1024)
	}
	return harness.AppendJSON(*out, p)
}

// probeLoop commits a one-row INSERT every interval on its own connection,
// reads the end of WAL right after the commit returned, and queues it for
// every receiver.
func probeLoop(ctx context.Context, dsn string, interval time.Duration, rs []*running, p *Phase) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		t0 := time.Now()
		if _, err := c.Exec(ctx, "INSERT INTO stream_probe DEFAULT VALUES"); err != nil {
			return ignoreCancel(ctx, err)
		}
		done := time.Now()
		var lsn int64
		if err := c.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&lsn); err != nil {
			return ignoreCancel(ctx, err)
		}
		p.CommitMS = append(p.CommitMS, float64(done.Sub(t0).Microseconds())/1000)
		for _, r := range rs {
			r.mu.Lock()
			r.queue = append(r.queue, probe{done, lsn})
			r.mu.Unlock()
		}
	}
}

// pollLoop reads every receiver's flush position every 5 ms and resolves
// the probes it has passed.
func pollLoop(ctx context.Context, dsn string, rs []*running) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := pollOnce(ctx, c, rs); err != nil {
			return ignoreCancel(ctx, err)
		}
	}
}

func pollOnce(ctx context.Context, c *pgx.Conn, rs []*running) error {
	rows, err := c.Query(ctx, "SELECT application_name, coalesce((flush_lsn - '0/0')::bigint, 0) FROM pg_stat_replication")
	if err != nil {
		return err
	}
	flush := map[string]int64{}
	for rows.Next() {
		var app string
		var f int64
		if err := rows.Scan(&app, &f); err != nil {
			return err
		}
		flush[app] = max(flush[app], f)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	now := time.Now()
	for _, r := range rs {
		r.mu.Lock()
		r.flushd = max(r.flushd, flush[r.App])
		for len(r.queue) > 0 && r.queue[0].lsn <= r.flushd {
			r.DurableS = append(r.DurableS, now.Sub(r.queue[0].at).Seconds())
			r.ProbeAtS = append(r.ProbeAtS, r.queue[0].at.Sub(loadStart).Seconds())
			r.queue = r.queue[1:]
		}
		r.mu.Unlock()
	}
	return nil
}

// waitFlushed waits until every receiver is connected and reports at least lsn flushed.
func waitFlushed(ctx context.Context, c *pgx.Conn, rs []*running, lsn int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ok := true
		for _, r := range rs {
			var f int64
			err := c.QueryRow(ctx, "SELECT coalesce(max((flush_lsn - '0/0')::bigint), -1) FROM pg_stat_replication WHERE application_name = $1", r.App).Scan(&f)
			if err != nil {
				return err
			}
			if f < lsn || f < 0 {
				ok = false
				if time.Now().After(deadline) {
					return fmt.Errorf("%s did not report %d flushed within %v (at %d; see %s)", r.Label, lsn, limit, f, r.log)
				}
			}
		}
		if ok {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readPitrLog picks pitr's JSON log lines: the stop line's totals, each
// chunk and segment stored, and warnings and errors.
func readPitrLog(r *running) error {
	f, err := os.Open(r.log)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Level, Message     string
			WALBytes           int64 `json:"wal_bytes"`
			Uploaded, Segments int64
			Stored             any // bytes, or an LSN on the stop line
			Whole              int64
			Took               any // ms, or a duration string ("23ms") as pitr logs it now
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch {
		case l.Message == "wal streaming stopped":
			r.WALBytes, r.Uploaded, r.Segments = l.WALBytes, l.Uploaded, l.Segments
		case l.Message == "wal chunk streamed":
			n, _ := l.Stored.(float64)
			r.ChunkStored = append(r.ChunkStored, n)
			r.ChunkTookMS = append(r.ChunkTookMS, tookMS(l.Took))
		case l.Message == "wal segment streamed":
			r.SegTookMS = append(r.SegTookMS, tookMS(l.Took))
		case l.Message == "wal segment sealed":
			r.SegTookMS = append(r.SegTookMS, tookMS(l.Took))
			r.Sealed++
			r.SealedWhole += l.Whole
		case l.Level == "warn" || l.Level == "error":
			r.Warnings = append(r.Warnings, sc.Text())
		}
	}
	return sc.Err()
}

// tookMS reads a log line's "took": zerolog writes a duration as a number
// of milliseconds by default, and pitr's logger as a string.
func tookMS(v any) float64 {
	switch t := v.(type) {
	case float64:
		return t
	case string:
		d, err := time.ParseDuration(t)
		if err == nil {
			return float64(d.Microseconds()) / 1000
		}
	}
	return math.NaN()
}

// cpus returns the receivers' and MinIO's CPU seconds and the machine's
// busy seconds; what cannot be read counts as 0.
func cpus(rs []*running, minio int) ([]float64, float64, float64) {
	var out []float64
	for _, r := range rs {
		out = append(out, procCPU(r.cmd.Process.Pid))
	}
	busy, _ := harness.MachineBusy()
	return out, procCPU(minio), busy
}

// procCPU is harness.ProcCPU, 0 for a process that is gone.
func procCPU(pid int) float64 {
	s, _ := harness.ProcCPU(pid)
	return s
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/stat")
	return max(1, len(regexp.MustCompile(`(?m)^cpu[0-9]+ `).FindAll(b, -1)))
}

func grabFloat(b []byte, re string) float64 {
	m := regexp.MustCompile(re).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// killedBy reports whether cmd, waited for, died of sig.
func killedBy(cmd *exec.Cmd, sig syscall.Signal) bool {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
