//go:build integration

package files

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage/s3"
)

// TestPackGCWhileSnapshotMinIO: pack GC and a snapshot at once against
// real S3 (MinIO), then the snapshot restores byte-identical.
func TestPackGCWhileSnapshotMinIO(t *testing.T) {
	srv := testenv.MinIO(t)
	st, err := s3.New(t.Context(), s3.Options{
		Bucket: srv.NewBucket(t), Endpoint: srv.Endpoint, Region: srv.Region, ForcePathStyle: true, MaxAttempts: 3,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	testPackGCWhileSnapshot(t, st)
}
