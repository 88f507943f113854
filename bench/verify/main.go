// Command verify is the measuring half of bench/verify.sh: it times one
// `pitr verify --json` (wall, CPU of it and its children, what it read),
// reads the same objects with plain GETs (the floor: what reading the
// repository costs without decrypting, decompressing or hashing), and
// turns the results into Markdown.
//
// It is its own main package, not a test, so `go test ./...` never runs it.
// Run bench/verify.sh rather than this directly: the script starts MinIO
// and PostgreSQL, makes the backup and runs the rounds.
//
// Subcommands:
//
//	freeport                          print a free TCP port on 127.0.0.1
//	mkbucket NAME...                  create buckets (BENCH_S3_ENDPOINT, AWS_* credentials)
//	run [flags] -- CMD ARGS...        time one pitr verify --json; append a JSON line
//	floor [flags]                     GET every object under a prefix, N at once; append a JSON line
//	idle [flags]                      wait until the machine is idle (at most --max)
//	report RESULTS.jsonl              Markdown section from the JSON lines
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

func main() {
	harness.Main("verify",
		harness.Command{Name: "freeport", Run: harness.FreePort},
		harness.Command{Name: "mkbucket", Run: harness.MkBucket},
		harness.Command{Name: "run", Run: cmdRun},
		harness.Command{Name: "floor", Run: cmdFloor},
		harness.Command{Name: "idle", Run: cmdIdle},
		harness.Command{Name: "report", Run: cmdReport},
	)
}

// Result is one measured run.
type Result struct {
	Phase   string  `json:"phase"` // first, incr
	Tool    string  `json:"tool"`  // pitr, floor
	Title   string  `json:"title"`
	Round   int     `json:"round"`
	WallS   float64 `json:"wall_s"`
	UserS   float64 `json:"user_s"`
	SysS    float64 `json:"sys_s"`
	MinIOS  float64 `json:"minio_cpu_s"`
	OtherS  float64 `json:"others_cpu_s"` // everyone else's CPU on the machine meanwhile
	Objects int64   `json:"objects"`      // objects read
	Bytes   int64   `json:"bytes"`        // stored bytes read
	Skipped int64   `json:"skipped,omitempty"`
}

func (r Result) mbps() float64 {
	if r.WallS == 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.WallS
}

// cmdRun times pitr verify --json and records what it says it read.
func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c harness.Common
	c.Flags(fs, "first or incr")
	logPath := fs.String("log", "", "file for the command's stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return errors.New("no command after --")
	}
	logf := io.Discard
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			return err
		}
		defer f.Close()
		logf = f
	}
	cpu, err := harness.StartCPU(c.MinioPID)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, logf
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start).Seconds()
	minio, machine, err := cpu.Stop()
	if err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("%s: %w (see %s)", strings.Join(argv, " "), runErr, *logPath)
	}
	var v struct{ Objects, Bytes, Skipped int64 }
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		return fmt.Errorf("pitr verify --json printed %q: %w", out.String(), err)
	}
	r := Result{Phase: c.Phase, Tool: c.Tool, Title: c.Title, Round: c.Round, WallS: wall, MinIOS: minio,
		Objects: v.Objects, Bytes: v.Bytes, Skipped: v.Skipped}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u := harness.UsageOf(ru)
		r.UserS, r.SysS = u.UserS, u.SysS
	}
	r.OtherS = max(0, machine-r.UserS-r.SysS-minio)
	fmt.Fprintf(os.Stderr, "%s %s: %d objects, %.1f MB in %.2f s: %.1f MB/s\n", c.Tool, c.Phase, r.Objects, float64(r.Bytes)/1e6, wall, r.mbps())
	return harness.AppendJSON(c.Out, r)
}

// cmdFloor GETs every object under the prefix (only keys also under
// --only, if given), --concurrency at once, discarding the bytes.
func cmdFloor(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	var c harness.Common
	c.Flags(fs, "first or incr")
	bucket := fs.String("bucket", "", "bucket")
	prefix := fs.String("prefix", "", "prefix of the repository")
	newer := fs.String("newer", "", "read only objects modified after this RFC 3339 time (an incremental run)")
	conc := fs.Int("concurrency", 4, "GETs at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var since time.Time
	if *newer != "" {
		t, err := time.Parse(time.RFC3339Nano, *newer)
		if err != nil {
			return err
		}
		since = t
	}
	ctx := context.Background()
	cl, err := harness.S3Client(ctx)
	if err != nil {
		return err
	}
	cpu, err := harness.StartCPU(c.MinioPID)
	if err != nil {
		return err
	}
	start := time.Now()
	var keys []string
	err = harness.ListPrefix(ctx, cl, *bucket, *prefix, func(o types.Object) error {
		k := aws.ToString(o.Key)
		if strings.Contains(k, "/reports/") || aws.ToTime(o.LastModified).Before(since) {
			return nil
		}
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var total int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(*conc)
	for _, k := range keys {
		g.Go(func() error {
			out, err := cl.GetObject(gctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(k)}, plain)
			if err != nil {
				return err
			}
			defer out.Body.Close()
			n, err := io.Copy(io.Discard, out.Body)
			mu.Lock()
			total += n
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	wall := time.Since(start).Seconds()
	minio, machine, err := cpu.Stop()
	if err != nil {
		return err
	}
	self, err := harness.ProcCPU(os.Getpid())
	if err != nil {
		return err
	}
	r := Result{Phase: c.Phase, Tool: c.Tool, Title: c.Title, Round: c.Round, WallS: wall, MinIOS: minio,
		Objects: int64(len(keys)), Bytes: total, UserS: self, OtherS: max(0, machine-self-minio)}
	fmt.Fprintf(os.Stderr, "%s %s: %d objects, %.1f MB in %.2f s: %.1f MB/s\n", c.Tool, c.Phase, r.Objects, float64(r.Bytes)/1e6, wall, r.mbps())
	return harness.AppendJSON(c.Out, r)
}

// plain turns off the SDK's response checksum validation, as pitr does
// for S3-compatible endpoints (MinIO sends none for whole-object GETs).
func plain(o *s3.Options) {
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

func cmdIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	maxWait := fs.Duration("max", 10*time.Second, "longest wait")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_, _, err := harness.WaitIdle(*maxWait)
	return err
}

// cmdReport prints the Markdown section: per phase, pitr verify against
// the floor, medians over the rounds.
func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	facts := fs.String("facts", "", "Markdown lines about the setup, printed first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: report [--facts FILE] RESULTS.jsonl")
	}
	rs, err := harness.ReadResults[Result](fs.Arg(0))
	if err != nil {
		return err
	}
	by := map[string][]Result{}
	for _, r := range rs {
		by[r.Phase+"/"+r.Tool] = append(by[r.Phase+"/"+r.Tool], r)
	}
	med := func(rs []Result, f func(Result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return harness.Median(xs)
	}
	fmt.Println("## pitr verify (bench/verify.sh)")
	fmt.Println()
	if *facts != "" {
		b, err := os.ReadFile(*facts)
		if err != nil {
			return err
		}
		fmt.Print(string(b))
		fmt.Println()
	}
	fmt.Println("| run | what | objects read | MB read | wall s | MB/s | CPU s (tool) | MinIO CPU s | others' CPU s | vs floor |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	var keys []string
	for k := range by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { // first before incr, floor before pitr
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		g := by[k]
		phase, tool, _ := strings.Cut(k, "/")
		ratio := "-"
		if f := by[phase+"/floor"]; tool != "floor" && len(f) > 0 {
			if fw := med(f, func(r Result) float64 { return r.WallS }); fw > 0 {
				ratio = fmt.Sprintf("%.2fx the floor's time", med(g, func(r Result) float64 { return r.WallS })/fw)
			}
		}
		fmt.Printf("| %s | %s | %.0f | %.1f | %.2f | %.1f | %.2f | %.2f | %.2f | %s |\n", phase, g[0].Title,
			med(g, func(r Result) float64 { return float64(r.Objects) }), med(g, func(r Result) float64 { return float64(r.Bytes) / 1e6 }),
			med(g, func(r Result) float64 { return r.WallS }), med(g, Result.mbps),
			med(g, func(r Result) float64 { return r.UserS + r.SysS }), med(g, func(r Result) float64 { return r.MinIOS }),
			med(g, func(r Result) float64 { return r.OtherS }), ratio)
	}
	fmt.Printf("\nMedians of %d round(s). MB = 10^6 bytes of stored (compressed, encrypted) objects.\n", len(by["first/pitr"]))
	return nil
}
