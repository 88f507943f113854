package main

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// cmdClean deletes every object under PREFIX.
func cmdClean(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: clean BUCKET PREFIX")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := harness.S3Client(ctx)
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
	if err := harness.ListPrefix(ctx, c, args[0], args[1], func(o types.Object) error {
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
