package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3Client talks to BENCH_S3_ENDPOINT with the AWS_* credentials and
// AWS_CA_BUNDLE from the environment.
func S3Client(ctx context.Context) (*s3.Client, error) {
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

// MkBucket is the mkbucket subcommand: it creates the buckets named by
// args, and buckets that exist already are fine.
func MkBucket(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := S3Client(ctx)
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

// ListPrefix calls fn for every object under prefix, in key order.
func ListPrefix(ctx context.Context, c *s3.Client, bucket, prefix string, fn func(types.Object) error) error {
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

// StoredS3 sums object sizes and counts objects under bucket/prefix.
func StoredS3(bucket, prefix string) (bytes int64, objects int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := S3Client(ctx)
	if err != nil {
		return 0, 0, err
	}
	err = ListPrefix(ctx, c, bucket, prefix, func(o types.Object) error {
		bytes += aws.ToInt64(o.Size)
		objects++
		return nil
	})
	return bytes, objects, err
}
