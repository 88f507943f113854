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
	WallS      float64 `json:"wall_s"`
	MiBps      float64 `json:"mib_s"`
	Ratio      float64 `json:"ratio"` // MiBps / LimitMiBps
	Pass       bool    `json:"pass"`  // within tolerance of the limit
	Rev        string  `json:"rev,omitempty"`
	Host       string  `json:"host,omitempty"`
}

const tolerance = 0.10

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
	fs.StringVar(&f.phases, "phases", "upload download shared pitr-up pitr-down", "phases to run")
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
	record := func(phase, what string, bytes int64, wall time.Duration) error {
		r := Result{Phase: phase, What: what, LimitMiBps: float64(f.limitMiB), Bytes: bytes, WallS: wall.Seconds(), Rev: f.rev}
		r.Host, _ = os.Hostname()
		r.MiBps = float64(bytes) / (1 << 20) / wall.Seconds()
		r.Ratio = r.MiBps / r.LimitMiBps
		r.Pass = r.Ratio >= 1-tolerance && r.Ratio <= 1+tolerance
		fmt.Fprintf(os.Stderr, "%-9s %7.1f MiB in %6.2fs: %6.2f MiB/s, %.3f of the limit (%s)\n",
			phase, float64(bytes)/(1<<20), r.WallS, r.MiBps, r.Ratio, map[bool]string{true: "pass", false: "FAIL"}[r.Pass])
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
		case "pitr-up", "pitr-down":
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
			return fmt.Errorf("%s: %.2f MiB/s is not within %.0f %% of the %d MiB/s limit", r.Phase, r.MiBps, 100*tolerance, f.limitMiB)
		}
	}
	return nil
}

// random is an endless, non-seekable stream of pseudo-random bytes: the
// store sees a pipe, as it does a backup's sealed stream.
type random struct{ r *rand.ChaCha8 }

func newRandom(seed byte) io.Reader { return random{rand.NewChaCha8([32]byte{seed})} }

func (r random) Read(p []byte) (int, error) { return r.r.Read(p) }

const benchKey = "limit/object"

// storePhase uploads size bytes through a limited store (upload), or reads
// them back (download).
func storePhase(ctx context.Context, phase string, open func(string) (storage.Storage, error), bps, size int64, record func(string, string, int64, time.Duration) error) error {
	raw, err := open("bench")
	if err != nil {
		return err
	}
	lim := limit.NewLimiter(bps)
	start := time.Now()
	if phase == "upload" {
		st := limit.New(raw, lim, nil)
		if err := st.Put(ctx, benchKey, io.LimitReader(newRandom(1), size)); err != nil {
			return err
		}
		return record(phase, "one Put through storage/limit over storage/s3", size, time.Since(start))
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
	return record(phase, "one Get through storage/limit over storage/s3", n, time.Since(start))
}

// sharedPhase puts half the bytes into each of two stores at once, both
// limited by one limiter: the pair gets the limit, not twice it.
func sharedPhase(ctx context.Context, open func(string) (storage.Storage, error), bps, size int64, record func(string, string, int64, time.Duration) error) error {
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
	for i, st := range stores {
		wg.Go(func() { errs[i] = st.Put(ctx, benchKey, io.LimitReader(newRandom(byte(2+i)), size/2)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return record("shared", "two Puts at once to two stores, one limiter", size, time.Since(start))
}

// pitrPhase runs the pitr binary with a limit flag: a files backup of one
// file of size random bytes (stored as they are: random data does not
// compress, encryption is off), or its restore.
func pitrPhase(ctx context.Context, phase string, f runFlags, endpoint string, size int64, record func(string, string, int64, time.Duration) error) error {
	dir := filepath.Join(f.work, "pitr-limit")
	src, cfg := filepath.Join(dir, "src"), filepath.Join(dir, "pitr.yaml")
	flagArg := fmt.Sprintf("%dMiB", f.limitMiB)
	var args []string
	if phase == "pitr-up" {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		if err := writeRandom(filepath.Join(src, "media.bin"), size); err != nil {
			return err
		}
		conf := fmt.Sprintf("repo: s3://%s/pitr\ns3_endpoint: %s\nencryption: none\nlog_format: json\nfiles_dedup_key: %s\nfiles:\n  - name: media\n    paths: [%s]\n",
			f.bucket, endpoint, filepath.Join(dir, "dedup.key"), src)
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			return err
		}
		args = []string{"--config", cfg, "--limit-upload", flagArg, "files", "backup", "media"}
	} else {
		target := filepath.Join(dir, "restored")
		if err := os.RemoveAll(target); err != nil {
			return err
		}
		args = []string{"--config", cfg, "--limit-download", flagArg, "files", "restore", "--set", "media", "--target", target}
	}
	cmd := exec.CommandContext(ctx, f.pitr, args...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("pitr %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	fmt.Fprintf(os.Stderr, "pitr: %s", out)
	stored, err := storedBytes(ctx, f.bucket, "pitr/files/")
	if err != nil {
		return err
	}
	what := "`pitr --limit-upload " + flagArg + " files backup` (bytes stored)"
	if phase == "pitr-down" {
		what = "`pitr --limit-download " + flagArg + " files restore` (bytes stored)"
	}
	return record(phase, what, stored, wall)
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
		"Rate: object bytes over the phase's wall time (the pitr phases: the bytes the snapshot stored, over the whole command). "+
		"Goal: within %.0f %% of the limit.\n\n", f.limitMiB, f.sizeMiB, f.rev, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"), 100*tolerance)
	fmt.Fprintln(&b, "| phase | what | MiB | seconds | MiB/s | of the limit | |\n|---|---|--:|--:|--:|--:|---|")
	for _, r := range rs {
		verdict := "within 10 %"
		if !r.Pass {
			verdict = "**outside 10 %**"
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.2f | %.2f | %.3f | %s |\n", r.Phase, r.What, float64(r.Bytes)/(1<<20), r.WallS, r.MiBps, r.Ratio, verdict)
	}
	return b.String()
}
