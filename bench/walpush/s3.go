package main

import (
	"context"
	"errors"
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

// listPrefix calls fn for every object under prefix.
func listPrefix(ctx context.Context, c *s3.Client, bucket, prefix string, fn func(types.Object) error) error {
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	return nil
}

func cmdClean(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: clean BUCKET PREFIX")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := s3Client(ctx)
	if err != nil {
		return err
	}
	var batch []types.ObjectIdentifier
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &args[0], Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)}})
		batch = batch[:0]
		return err
	}
	// Collect first: deleting while paging can skip keys.
	var all []types.ObjectIdentifier
	if err := listPrefix(ctx, c, args[0], args[1], func(o types.Object) error {
		all = append(all, types.ObjectIdentifier{Key: o.Key})
		return nil
	}); err != nil {
		return err
	}
	for _, o := range all {
		batch = append(batch, o)
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// storedS3 sums object sizes and counts objects under bucket/prefix.
func storedS3(bucket, prefix string) (bytes int64, objects int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := s3Client(ctx)
	if err != nil {
		return 0, 0, err
	}
	err = listPrefix(ctx, c, bucket, prefix, func(o types.Object) error {
		bytes += aws.ToInt64(o.Size)
		objects++
		return nil
	})
	return bytes, objects, err
}
