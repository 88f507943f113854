package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func cmdFreePort() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
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

// storedS3 sums object sizes and counts objects under bucket/prefix.
func storedS3(bucket, prefix string) (bytes int64, objects int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := s3Client(ctx)
	if err != nil {
		return 0, 0, err
	}
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return 0, 0, err
		}
		for _, o := range page.Contents {
			bytes += aws.ToInt64(o.Size)
			objects++
		}
	}
	return bytes, objects, nil
}

// cmdStored records what one tool keeps in the bucket for its backups:
// --per divides by the number of backups taken.
func cmdStored(args []string) error {
	fs := flag.NewFlagSet("stored", flag.ExitOnError)
	tool := fs.String("tool", "", "tool label")
	per := fs.Int("per", 1, "number of backups under the prefix")
	out := fs.String("out", "", "results file to append a JSON line to")
	fs.Parse(args)
	if fs.NArg() != 2 {
		return errors.New("usage: stored [flags] BUCKET PREFIX")
	}
	b, n, err := storedS3(fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	return appendResult(*out, Result{Kind: "stored", Tool: *tool, StoredBytes: b / int64(*per), Objects: n / *per})
}
