// Command stream is the measuring half of bench/stream.sh: it runs WAL
// receivers (pitr wal-receive and pg_receivewal) side by side under a
// pgbench load, probes how long a commit takes to be reported flushed by
// each, and measures their CPU and peak memory.
//
// It is its own main package, not a test, so `go test ./...` never runs it.
// Run bench/stream.sh rather than this directly.
//
// Subcommands:
//
//	freeport                     print a free TCP port on 127.0.0.1
//	mkbucket NAME...             create buckets (BENCH_S3_ENDPOINT, AWS_* credentials)
//	run [flags]                  one phase; appends a JSON line to --out
//	report [flags] RESULTS.jsonl Markdown section from the JSON lines
//	splice --file F --section S  put the section into F between the markers
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: stream freeport|mkbucket|run|report|splice ...")
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "freeport":
		var l net.Listener
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			fmt.Println(l.Addr().(*net.TCPAddr).Port)
			l.Close()
		}
	case "mkbucket":
		err = cmdMkBucket(args)
	case "run":
		err = cmdRun(args)
	case "report":
		err = cmdReport(args)
	case "splice":
		err = cmdSplice(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stream %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// s3Client talks to BENCH_S3_ENDPOINT with the AWS_* credentials and
// AWS_CA_BUNDLE from the environment.
func s3Client(ctx context.Context) (*s3.Client, error) {
	endpoint := os.Getenv("BENCH_S3_ENDPOINT")
	if endpoint == "" {
		return nil, errors.New("BENCH_S3_ENDPOINT is not set")
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	}), nil
}

func cmdMkBucket(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := s3Client(ctx)
	if err != nil {
		return err
	}
	for _, b := range args {
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)})
		var owned *types.BucketAlreadyOwnedByYou
		if err != nil && !errors.As(err, &owned) {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	return nil
}

// walObjects sums the whole-segment objects under s3://bucket/prefix/wal/
// and counts the streamed chunks left there.
func walObjects(where string, res *Recv) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := s3Client(ctx)
	if err != nil {
		return err
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(where, "s3://"), "/")
	prefix = strings.TrimSuffix(prefix, "/") + "/wal/"
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			if strings.Contains(aws.ToString(o.Key), ".stream/") {
				res.LeftoverChunks++
			} else {
				res.WholeBytes += aws.ToInt64(o.Size)
				res.WholeObjects++
			}
		}
	}
	return nil
}
