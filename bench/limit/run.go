package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pitr-dev/pitr/bench/internal/harness"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/limit"
	"github.com/pitr-dev/pitr/storage/s3"
)

// Result is one phase.
type Result struct {
	Phase      string  `json:"phase"`
	What       string  `json:"what"`
	LimitMiBps float64 `json:"limit_mib_s"`
	Bytes      int64   `json:"bytes"`
	WallS      float64 `json:"wall_s"`  // the phase; for uploads, until the last byte was read from the source
	WholeS     float64 `json:"whole_s"` // the whole call or command, its store's answer included
	MiBps      float64 `json:"mib_s"`
	Ratio      float64 `json:"ratio"` // MiBps / LimitMiBps
	Goal       string  `json:"goal"`  // goalWithin, goalCap or goalNone
	Pass       bool    `json:"pass"`
	Rev        string  `json:"rev,omitempty"`
	Host       string  `json:"host,omitempty"`
}

const tolerance = 0.10

// recorder records a phase: bytes over wall, and the whole call's time.
type recorder func(phase, what string, bytes int64, wall, whole time.Duration) error

// Goals. A transfer through the decorator must run at the limit; a whole
// pitr command also spends time on other work (start-up, chunking,
// writing and syncing files), so it must only never exceed the limit. A
// run without a limit is the baseline that shows the limit at work.
const (
	goalWithin = "within 10 % of the limit"
	goalCap    = "not above the limit (+10 %)"
	goalNone   = "baseline, no limit"
)

type runFlags struct {
	limitMiB, sizeMiB int
	bucket, out, md   string
	pitr, work, rev   string
	phases            string
}

func cmdRun(args []string) error {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.IntVar(&f.limitMiB, "limit-mib", 20, "the limit, MiB per second")
	fs.IntVar(&f.sizeMiB, "size-mib", 200, "bytes moved in each phase, MiB")
	fs.StringVar(&f.bucket, "bucket", "limit", "bucket (BENCH_S3_ENDPOINT)")
	fs.StringVar(&f.out, "out", "", "results file to append JSON lines to")
	fs.StringVar(&f.md, "md", "", "Markdown section to write")
	fs.StringVar(&f.pitr, "pitr", "", "pitr binary for the pitr-up and pitr-down phases (none: skipped)")
	fs.StringVar(&f.work, "work", os.TempDir(), "scratch directory for the pitr phases")
	fs.StringVar(&f.rev, "rev", "", "pitr revision measured, for the report")
	fs.StringVar(&f.phases, "phases", "upload download shared pitr-up pitr-down pitr-up-free pitr-down-free", "phases to run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	endpoint := os.Getenv("BENCH_S3_ENDPOINT")
	if endpoint == "" {
		return errors.New("BENCH_S3_ENDPOINT is not set")
	}
	open := func(prefix string) (storage.Storage, error) {
		return s3.New(ctx, s3.Options{Bucket: f.bucket, Prefix: prefix, Endpoint: endpoint, ForcePathStyle: true})
	}
	bps := int64(f.limitMiB) << 20
	size := int64(f.sizeMiB) << 20
	var results []Result
	var record recorder = func(phase, what string, bytes int64, wall, whole time.Duration) error {
		r := Result{Phase: phase, What: what, LimitMiBps: float64(f.limitMiB), Bytes: bytes, WallS: wall.Seconds(), WholeS: whole.Seconds(), Rev: f.rev}
		r.Host, _ = os.Hostname()
		r.MiBps = float64(bytes) / (1 << 20) / wall.Seconds()
		r.Ratio = r.MiBps / r.LimitMiBps
		switch {
		case strings.HasSuffix(phase, "-free"):
			r.Goal, r.Pass = goalNone, true
		case strings.HasPrefix(phase, "pitr-"):
			r.Goal, r.Pass = goalCap, r.Ratio <= 1+tolerance
		default:
			r.Goal, r.Pass = goalWithin, r.Ratio >= 1-tolerance && r.Ratio <= 1+tolerance
		}
		fmt.Fprintf(os.Stderr, "%-14s %7.1f MiB in %6.2fs (whole %6.2fs): %7.2f MiB/s, %.3f of the limit (%s: %s)\n",
			phase, float64(bytes)/(1<<20), r.WallS, r.WholeS, r.MiBps, r.Ratio, r.Goal, map[bool]string{true: "pass", false: "FAIL"}[r.Pass])
		results = append(results, r)
		return harness.AppendJSON(f.out, r)
	}
	for _, phase := range strings.Fields(f.phases) {
		var err error
		switch phase {
		case "upload", "download":
			err = storePhase(ctx, phase, open, bps, size, record)
		case "shared":
			err = sharedPhase(ctx, open, bps, size, record)
		case "pitr-up", "pitr-down", "pitr-up-free", "pitr-down-free":
			if f.pitr == "" {
				fmt.Fprintf(os.Stderr, "%s: no --pitr binary, skipped\n", phase)
				continue
			}
			err = pitrPhase(ctx, phase, f, endpoint, size, record)
		default:
			err = fmt.Errorf("unknown phase %q", phase)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", phase, err)
		}
	}
	if f.md != "" {
		if err := os.WriteFile(f.md, []byte(markdown(f, results)), 0o644); err != nil {
			return err
		}
	}
	for _, r := range results {
		if !r.Pass {
			return fmt.Errorf("%s: %.2f MiB/s against a %d MiB/s limit: want %s", r.Phase, r.MiBps, f.limitMiB, r.Goal)
		}
	}
	return nil
}

// random is an endless, non-seekable stream of pseudo-random bytes: the
// store sees a pipe, as it does a backup's sealed stream.
type random struct{ r *rand.ChaCha8 }

func newRandom(seed byte) io.Reader { return random{rand.NewChaCha8([32]byte{seed})} }

func (r random) Read(p []byte) (int, error) { return r.r.Read(p) }

// source is size bytes of newRandom(seed) that note when they were read
// to the end: for an upload, the limiter's part ends there, and what
// follows (the store sending its last buffered parts and answering) is
// the store's. On a machine as busy as this one that tail takes seconds.
type source struct {
	r   io.Reader
	end time.Time
}

func newSource(seed byte, size int64) *source {
	return &source{r: io.LimitReader(newRandom(seed), size)}
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF && s.end.IsZero() {
		s.end = time.Now()
	}
	return n, err
}

const benchKey = "limit/object"

// storePhase uploads size bytes through a limited store (upload), or reads
// them back (download).
func storePhase(ctx context.Context, phase string, open func(string) (storage.Storage, error), bps, size int64, record recorder) error {
	raw, err := open("bench")
	if err != nil {
		return err
	}
	lim := limit.NewLimiter(bps)
	start := time.Now()
	if phase == "upload" {
		st := limit.New(raw, lim, nil)
		src := newSource(1, size)
		if err := st.Put(ctx, benchKey, src); err != nil {
			return err
		}
		return record(phase, "one Put through storage/limit over storage/s3", size, src.end.Sub(start), time.Since(start))
	}
	st := limit.New(raw, nil, lim)
	rc, err := st.Get(ctx, benchKey)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return err
	}
	wall := time.Since(start)
	return record(phase, "one Get through storage/limit over storage/s3", n, wall, wall)
}

// sharedPhase puts half the bytes into each of two stores at once, both
// limited by one limiter: the pair gets the limit, not twice it.
func sharedPhase(ctx context.Context, open func(string) (storage.Storage, error), bps, size int64, record recorder) error {
	lim := limit.NewLimiter(bps)
	var stores []storage.Storage
	for _, prefix := range []string{"primary", "offsite"} {
		raw, err := open(prefix)
		if err != nil {
			return err
		}
		stores = append(stores, limit.New(raw, lim, nil))
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	srcs := []*source{newSource(2, size/2), newSource(3, size/2)}
	for i, st := range stores {
		wg.Go(func() { errs[i] = st.Put(ctx, benchKey, srcs[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	end := srcs[0].end
	if srcs[1].end.After(end) {
		end = srcs[1].end
	}
	return record("shared", "two Puts at once to two stores, one limiter", size, end.Sub(start), time.Since(start))
}

// pitrPhase runs the pitr binary with a limit flag (without one for the
// -free phases, into a repository of their own): a files backup of one
// file of size random bytes (stored as they are: random data does not
// compress, encryption is off), or its restore.
func pitrPhase(ctx context.Context, phase string, f runFlags, endpoint string, size int64, record recorder) error {
	free := strings.HasSuffix(phase, "-free")
	up := strings.HasPrefix(phase, "pitr-up")
	prefix := "pitr"
	if free {
		prefix = "pitr-free"
	}
	dir := filepath.Join(f.work, "pitr-limit")
	src, cfg := filepath.Join(dir, "src"), filepath.Join(dir, prefix+".yaml")
	var args []string
	limitFlag := "--limit-download"
	if up {
		limitFlag = "--limit-upload"
	}
	if !free {
		args = []string{limitFlag, fmt.Sprintf("%dMiB", f.limitMiB)}
	}
	shown := len(args) + 2 // the limit and "files backup" or "files restore", for the report
	if up {
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		file := filepath.Join(src, "media.bin")
		if fi, err := os.Stat(file); err != nil || fi.Size() != size {
			if err := writeRandom(file, size); err != nil {
				return err
			}
		}
		conf := fmt.Sprintf("repo: s3://%s/%s\ns3_endpoint: %s\nencryption: none\nlog_format: json\nfiles_dedup_key: %s\nfiles:\n  - name: media\n    paths: [%s]\n",
			f.bucket, prefix, endpoint, filepath.Join(dir, prefix+".key"), src)
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			return err
		}
		args = append(args, "files", "backup", "media")
	} else {
		target := filepath.Join(dir, "restored")
		if err := os.RemoveAll(target); err != nil {
			return err
		}
		args = append(args, "files", "restore", "--set", "media", "--target", target)
	}
	cmd := exec.CommandContext(ctx, f.pitr, append([]string{"--config", cfg}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, prefix+"-cache"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("pitr %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	fmt.Fprintf(os.Stderr, "pitr: %s", out)
	stored, err := storedBytes(ctx, f.bucket, prefix+"/files/")
	if err != nil {
		return err
	}
	return record(phase, "`pitr "+strings.Join(args[:shown], " ")+"` (bytes stored)", stored, wall, wall)
}

func writeRandom(path string, size int64) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(fh, io.LimitReader(newRandom(9), size)); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// storedBytes sums the objects under bucket/prefix.
func storedBytes(ctx context.Context, bucket, prefix string) (int64, error) {
	c, err := harness.S3Client(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	err = harness.ListPrefix(ctx, c, bucket, prefix, func(o types.Object) error {
		n += aws.ToInt64(o.Size)
		return nil
	})
	return n, err
}

func markdown(f runFlags, rs []Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Bandwidth limit (bench/limit.sh)\n\n")
	fmt.Fprintf(&b, "A limit of %d MiB/s, %d MiB per phase, local MinIO over TLS; pitr %s, %d CPUs, %s. "+
		"Rate: object bytes over the phase's wall time, which for an upload ends when the limited reader gave the store its last byte "+
		"(\"whole\": until the store answered, its last buffered parts sent); the pitr phases: the bytes the snapshot stored, over the whole command, "+
		"start-up, chunking and writing files included, so the goal there is not to exceed the limit; the -free phases run the same commands "+
		"without a limit, into a repository of their own.\n\n", f.limitMiB, f.sizeMiB, f.rev, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintln(&b, "| phase | what | MiB | seconds | whole | MiB/s | of the limit | goal | |\n|---|---|--:|--:|--:|--:|--:|---|---|")
	for _, r := range rs {
		verdict := "met"
		if !r.Pass {
			verdict = "**missed**"
		}
		if r.Goal == goalNone {
			verdict = ""
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.2f | %.2f | %.2f | %.3f | %s | %s |\n", r.Phase, r.What, float64(r.Bytes)/(1<<20), r.WallS, r.WholeS, r.MiBps, r.Ratio, r.Goal, verdict)
	}
	return b.String()
}
