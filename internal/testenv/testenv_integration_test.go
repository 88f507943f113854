//go:build integration

package testenv_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

func TestMinIOStopStart(t *testing.T) {
	start := time.Now()
	m := testenv.MinIO(t)
	t.Logf("minio start: %s", time.Since(start).Round(time.Millisecond))
	bucket := m.NewBucket(t)
	put(t, m, bucket, "a/b", "hello")

	m.Stop(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	noRetry := func(o *s3.Options) { o.RetryMaxAttempts = 1 }
	if _, err := m.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}, noRetry); err == nil {
		t.Fatal("HeadBucket succeeded while MinIO is stopped")
	}

	start = time.Now()
	m.Start(t)
	t.Logf("minio restart: %s", time.Since(start).Round(time.Millisecond))
	if got := get(t, m, bucket, "a/b"); got != "hello" {
		t.Errorf("after restart got %q", got)
	}
}

func TestMinIOBuckets(t *testing.T) {
	m := testenv.MinIO(t)
	b1, b2 := m.NewBucket(t), m.NewBucket(t)
	if b1 == b2 {
		t.Fatalf("NewBucket returned %s twice", b1)
	}
	put(t, m, b1, "k", "one")
	out, err := m.Client().ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &b2})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 {
		t.Errorf("new bucket %s holds %d objects", b2, len(out.Contents))
	}
	env := strings.Join(m.Env(), " ")
	for _, want := range []string{"AWS_ACCESS_KEY_ID=" + m.AccessKey, "AWS_SECRET_ACCESS_KEY=" + m.SecretKey, "AWS_REGION=us-east-1"} {
		if !strings.Contains(env, want) {
			t.Errorf("Env() lacks %s", want)
		}
	}
}

func put(t *testing.T, m *testenv.MinIOServer, bucket, key, body string) {
	t.Helper()
	_, err := m.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, m *testenv.MinIOServer, bucket, key string) string {
	t.Helper()
	out, err := m.Client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDir(t *testing.T) {
	dir := testenv.Dir(t)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", fi.Mode().Perm())
	}
	if uid, _, ok := scratch.PostgresUser(); ok {
		if got := fi.Sys().(*syscall.Stat_t).Uid; int(got) != uid {
			t.Errorf("owner %d, want postgres (%d)", got, uid)
		}
	}
}

// TestPostgresArchiveEnv checks that the server's archive_command runs as
// the postgres user, can write to a Dir and sees Options.Env.
func TestPostgresArchiveEnv(t *testing.T) {
	dir := testenv.Dir(t)
	c := testenv.PostgresWith(t, scratch.Options{
		Settings: map[string]string{
			"archive_mode":    "on",
			"archive_command": `cp %p '` + dir + `/%f' && echo "$PITR_MARK" > '` + dir + `/mark'`,
		},
		Env: []string{"PITR_MARK=from-env"},
	})
	if err := c.Exec(t.Context(), "SELECT pg_switch_wal()"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(dir, "mark"))
		return err == nil && strings.TrimSpace(string(b)) == "from-env", fmt.Sprintf("archive_command did not run: %q, %v", b, err)
	})
	segs, _ := filepath.Glob(filepath.Join(dir, "0000000100000000000000*"))
	if len(segs) == 0 {
		t.Error("no WAL segment archived")
	}
}

func TestPitrBinary(t *testing.T) {
	if _, err := os.Stat("../../cmd/pitr"); err != nil {
		t.Skip("no cmd/pitr yet")
	}
	bin := testenv.PitrBinary(t)
	if bin != testenv.PitrBinary(t) {
		t.Error("PitrBinary built twice")
	}
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil {
		t.Errorf("pitr --help: %v\n%s", err, out)
	}
}
