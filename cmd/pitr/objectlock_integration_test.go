//go:build integration

package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/s3"
)

// useLockedBucket moves the rig's repository to a new bucket with Object
// Lock, and turns the lock on for every upload (before any cluster is
// made, so archive_command locks too).
func (r *rig) useLockedBucket(mode string, days string) {
	r.t.Helper()
	r.bucket = r.minio.NewLockedBucket(r.t)
	env := r.env[:0:0]
	for _, kv := range r.env {
		if !strings.HasPrefix(kv, "PITR_REPO=") {
			env = append(env, kv)
		}
	}
	r.env = append(env, "PITR_REPO=s3://"+r.bucket+"/db1", "PITR_S3_OBJECT_LOCK="+mode, "PITR_S3_OBJECT_LOCK_DAYS="+days)
}

// TestObjectLock: a repository on a bucket with Object Lock (governance, 1
// day): backup and archiving succeed, every object carries the retention,
// and deleting a backup's object is refused with storage.ErrLocked (and
// reported by pitr retain, once it is in the build), the backup still
// listed. Object Lock on a local repository is a usage error.
func TestObjectLock(t *testing.T) {
	r := newRig(t, "minio")
	r.useLockedBucket("governance", "1")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL, at timestamptz DEFAULT clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "a", 100)
	start := time.Now()
	r.mustRun(backupEnv(c), "backup")
	switchAndWait(t, c, time.Minute)

	st := r.store()
	var keys []string
	if err := st.List(t.Context(), "", func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	client := r.minio.Client()
	var part string
	for _, k := range keys {
		out, err := client.GetObjectRetention(t.Context(), &s3api.GetObjectRetentionInput{Bucket: aws.String(r.bucket), Key: aws.String("db1/" + k)})
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		until := aws.ToTime(out.Retention.RetainUntilDate)
		if out.Retention.Mode != types.ObjectLockRetentionModeGovernance || until.Before(start.Add(23*time.Hour)) || until.After(time.Now().Add(25*time.Hour)) {
			t.Errorf("%s: retention %s until %s, want GOVERNANCE for a day", k, out.Retention.Mode, until)
		}
		if strings.HasPrefix(k, "backups/") && strings.Contains(k, "/base.tar.") {
			part = k
		}
	}
	if part == "" || len(keys) < 5 {
		t.Fatalf("objects %q: want a base.tar part and WAL", keys)
	}

	// The retention host's credential may delete, but not a locked object.
	locked, err := s3.New(t.Context(), s3.Options{
		Bucket: r.bucket, Prefix: "db1", Endpoint: r.minio.Endpoint, Region: r.minio.Region, ForcePathStyle: true,
		Credentials:    credentials.NewStaticCredentialsProvider(r.minio.AccessKey, r.minio.SecretKey, ""),
		ObjectLockMode: "governance", ObjectLockDays: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = locked.Delete(t.Context(), part)
	if !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("delete %s = %v, want ErrLocked", part, err)
	}
	t.Logf("refused: %v", err)
	if _, err := st.Stat(t.Context(), part); err != nil {
		t.Fatalf("%s after the refused delete: %v", part, err)
	}
	if lo := r.list(); len(lo.Backups) != 1 {
		t.Fatalf("list after the refused delete: %d backups", len(lo.Backups))
	}

	_, stderr, code := r.runEnv([]string{"PITR_REPO=file:///tmp/pitr-objectlock"}, "list")
	if code != 2 || !strings.Contains(stderr, "s3_object_lock governance: repository file:///tmp/pitr-objectlock is not on S3") {
		t.Errorf("object lock on a local repository: exit %d, %q", code, stderr)
	}

	if !r.hasCommand("retain") {
		t.Log("pitr retain is not in this build: its report of locked objects is not checked")
		return
	}
	first := r.list().Backups[0].ID
	r.mustRun(backupEnv(c), "backup")
	out, stderr, code := r.run("retain", "--keep-last", "1")
	if code != 0 || !strings.Contains(out+stderr, "locked") {
		t.Errorf("retain on locked objects: exit %d, want 0 and a report of what is locked:\n%s%s", code, out, stderr)
	}
	if _, err := st.Stat(t.Context(), catalog.BackupEntryKey(first)); err != nil {
		t.Errorf("the older, locked backup's entry after retain: %v", err)
	}
}
