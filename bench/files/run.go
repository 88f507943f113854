package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// Result is one JSON line of results.jsonl.
type Result struct {
	Kind  string `json:"kind"`            // run, verify, tree, change, busy
	Phase string `json:"phase,omitempty"` // first, incr, restore, copy
	Tool  string `json:"tool,omitempty"`
	Title string `json:"title,omitempty"`
	Round int    `json:"round,omitempty"`
	Cmd   string `json:"cmd,omitempty"`

	WallS     float64 `json:"wall_s,omitempty"`
	UserS     float64 `json:"user_s,omitempty"`
	SysS      float64 `json:"sys_s,omitempty"`
	MaxRSSKiB int64   `json:"max_rss_kib,omitempty"`
	// MinIOCPUS is MinIO's CPU time during the run, MachineCPUS the busy
	// CPU time of the whole machine, OthersCPUS what is left of it when the
	// tool's and MinIO's are taken away (other work on a shared machine).
	MinIOCPUS   float64 `json:"minio_cpu_s,omitempty"`
	MachineCPUS float64 `json:"machine_cpu_s,omitempty"`
	OthersCPUS  float64 `json:"others_cpu_s,omitempty"`
	NumCPU      int     `json:"num_cpu,omitempty"`

	// The tree the command read or wrote (run --input-bytes), or verify's count.
	InputBytes int64 `json:"input_bytes,omitempty"`
	InputFiles int   `json:"input_files,omitempty"`

	// From MinIO's API metrics, before and after: upload requests
	// (PutObject, UploadPart, CopyObject), all requests by API, and the
	// request bytes MinIO received.
	PutRequests   int            `json:"put_requests,omitempty"`
	Requests      map[string]int `json:"requests,omitempty"`
	ReceivedBytes int64          `json:"received_bytes,omitempty"`
	SentBytes     int64          `json:"sent_bytes,omitempty"`
	// From listing the tool's prefix before and after: objects and bytes
	// added (net: objects deleted during the run are subtracted), and what
	// the prefix held afterwards.
	ObjectsAdded  int   `json:"objects_added,omitempty"`
	BytesAdded    int64 `json:"bytes_added,omitempty"`
	StoredObjects int   `json:"stored_objects,omitempty"`
	StoredBytes   int64 `json:"stored_bytes,omitempty"`

	// verify
	Paths        int `json:"paths,omitempty"`
	MtimesDiffer int `json:"mtimes_differ,omitempty"`

	Tree     *TreeStats `json:"tree,omitempty"`      // tree, change
	BusyFrac float64    `json:"busy_frac,omitempty"` // busy: the machine was this busy before a measurement
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func summary(r Result) string {
	if r.Kind == "busy" {
		return fmt.Sprintf("machine %.0f%% busy before the next measurement", 100*r.BusyFrac)
	}
	s := fmt.Sprintf("%.2f s", r.WallS)
	if r.InputBytes > 0 && r.WallS > 0 {
		s += fmt.Sprintf(" (%.1f MB/s)", float64(r.InputBytes)/1e6/r.WallS)
	}
	s += fmt.Sprintf(", cpu %.2f s (user %.2f, sys %.2f), max rss %.1f MiB, minio cpu %.2f s, others cpu %.2f s",
		r.UserS+r.SysS, r.UserS, r.SysS, float64(r.MaxRSSKiB)/1024, r.MinIOCPUS, r.OthersCPUS)
	if r.Requests != nil {
		s += fmt.Sprintf(", %d PUT requests, %.1f MiB received by MinIO, %.1f MiB sent", r.PutRequests, mib(r.ReceivedBytes), mib(r.SentBytes))
	}
	if r.StoredObjects > 0 {
		s += fmt.Sprintf(", %+d objects (%+.1f MiB), prefix now %d objects, %.1f MiB", r.ObjectsAdded, mib(r.BytesAdded), r.StoredObjects, mib(r.StoredBytes))
	}
	return s
}

type common struct{ harness.Common }

func (c *common) flags(fs *flag.FlagSet) { c.Flags(fs, "first, incr, restore or copy") }

func (c *common) result(kind string) Result {
	return Result{Kind: kind, Phase: c.Phase, Tool: c.Tool, Title: c.Title, Round: c.Round}
}

// minioMetrics are MinIO's API metrics (Prometheus text, metrics v3
// /minio/metrics/v3/api/requests, which unlike v2's are not cached for
// seconds; the script starts MinIO with MINIO_PROMETHEUS_AUTH_TYPE=public):
// S3 requests by API and the bytes received and sent.
type minioMetrics struct {
	requests       map[string]float64
	received, sent float64
}

func readMetrics(ctx context.Context, url string) (minioMetrics, error) {
	m := minioMetrics{requests: map[string]float64{}}
	pool := x509.NewCertPool()
	if ca := os.Getenv("AWS_CA_BUNDLE"); ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return m, err
		}
		pool.AppendCertsFromPEM(b)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return m, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("metrics %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "minio_api_requests_total":
			for _, l := range strings.Split(labels, ",") {
				if api, ok := strings.CutPrefix(l, `name="`); ok {
					m.requests[strings.ToLower(strings.TrimSuffix(api, `"`))] += v
				}
			}
		case "minio_api_requests_traffic_received_bytes":
			m.received += v
		case "minio_api_requests_traffic_sent_bytes":
			m.sent += v
		}
	}
	return m, sc.Err()
}

// uploadAPIs are the requests that store object data.
var uploadAPIs = []string{"putobject", "putobjectpart", "copyobject", "copyobjectpart"}

// cmdRun runs one command and records its wall time, the CPU time and peak
// RSS of it and every descendant, and what it did to the bucket: requests
// and bytes from MinIO's metrics, objects added under --prefix from
// listings before and after.
func cmdRun(args []string) error {
	fl := flag.NewFlagSet("run", flag.ExitOnError)
	var c common
	c.flags(fl)
	logPath := fl.String("log", "", "file for the command's stdout and stderr")
	bucket := fl.String("bucket", "", "bucket to list before and after")
	prefix := fl.String("prefix", "", "prefix to list before and after (with --bucket)")
	metrics := fl.String("metrics", "", "MinIO API metrics URL (v3 .../api/requests)")
	inBytes := fl.Int64("input-bytes", 0, "bytes of the tree the command reads or writes (for MB/s)")
	inFiles := fl.Int("input-files", 0, "files of the tree")
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
	ctx := context.Background()
	var out io.Writer = os.Stderr
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	var b0 int64
	var n0 int
	if *bucket != "" {
		var err error
		if b0, n0, err = harness.StoredS3(*bucket, *prefix); err != nil {
			return err
		}
	}
	var m0 minioMetrics
	if *metrics != "" {
		var err error
		if m0, err = readMetrics(ctx, *metrics); err != nil {
			return err
		}
	}
	res := c.result("run")
	res.Cmd = strings.Join(argv, " ")
	res.InputBytes, res.InputFiles, res.NumCPU = *inBytes, *inFiles, runtime.NumCPU()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	meter, err := harness.StartCPU(c.MinioPID)
	if err != nil {
		return err
	}
	start := time.Now()
	runErr := cmd.Run()
	res.WallS = time.Since(start).Seconds()
	if res.MinIOCPUS, res.MachineCPUS, err = meter.Stop(); err != nil {
		return err
	}
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
	res.OthersCPUS = max(0, res.MachineCPUS-res.UserS-res.SysS-res.MinIOCPUS)
	if *metrics != "" {
		m1, err := readMetrics(ctx, *metrics)
		if err != nil {
			return err
		}
		res.Requests = map[string]int{}
		for api, v := range m1.requests {
			if d := int(v - m0.requests[api]); d > 0 {
				res.Requests[api] = d
			}
		}
		for _, api := range uploadAPIs {
			res.PutRequests += res.Requests[api]
		}
		res.ReceivedBytes, res.SentBytes = int64(m1.received-m0.received), int64(m1.sent-m0.sent)
	}
	if *bucket != "" {
		b1, n1, err := harness.StoredS3(*bucket, *prefix)
		if err != nil {
			return err
		}
		res.ObjectsAdded, res.BytesAdded, res.StoredObjects, res.StoredBytes = n1-n0, b1-b0, n1, b1
	}
	fmt.Printf("%-8s %-8s round %d: %s\n", res.Phase, res.Tool, res.Round, summary(res))
	return harness.AppendJSON(c.Out, res)
}

// plain turns off the SDK's default CRC checksums (a trailing checksum
// makes MinIO refuse bodies over 16 MiB in one chunk), as pitr does for
// S3-compatible endpoints.
func plain(o *s3.Options) {
	o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

// cmdS3Copy copies every object under one prefix to another (another
// bucket, maybe) with plain GET and PUT, --concurrency at a time, each
// object read whole into memory first: the floor for `pitr copy`, which
// also checks what it copies.
func cmdS3Copy(args []string) error {
	fl := flag.NewFlagSet("s3copy", flag.ExitOnError)
	fromBucket := fl.String("from-bucket", "", "source bucket")
	fromPrefix := fl.String("from-prefix", "", "source prefix")
	toBucket := fl.String("to-bucket", "", "target bucket")
	toPrefix := fl.String("to-prefix", "", "target prefix (replaces --from-prefix)")
	conc := fl.Int("concurrency", 4, "objects copied at once")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *fromBucket == "" || *toBucket == "" {
		return errors.New("need --from-bucket and --to-bucket")
	}
	ctx := context.Background()
	c, err := harness.S3Client(ctx)
	if err != nil {
		return err
	}
	var keys []string
	if err := harness.ListPrefix(ctx, c, *fromBucket, *fromPrefix, func(o types.Object) error {
		keys = append(keys, aws.ToString(o.Key))
		return nil
	}); err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		total int64
	)
	start := time.Now()
	err = parallel(*conc, len(keys), func(k int) error {
		key := keys[k]
		obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: fromBucket, Key: &key}, plain)
		if err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
		b, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		to := *toPrefix + strings.TrimPrefix(key, *fromPrefix)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: toBucket, Key: &to, Body: bytes.NewReader(b),
			ContentLength: aws.Int64(int64(len(b)))}, plain); err != nil {
			return fmt.Errorf("put %s: %w", to, err)
		}
		mu.Lock()
		total += int64(len(b))
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("copied %d objects, %.1f MiB, in %.2f s\n", len(keys), mib(total), time.Since(start).Seconds())
	return nil
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
	return harness.AppendJSON(*out, Result{Kind: "busy", BusyFrac: frac})
}
