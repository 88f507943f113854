//go:build integration

package s3

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/retry"
)

// versionsOf counts the versions and delete markers of key in bucket.
func versionsOf(t *testing.T, srv *testenv.MinIOServer, bucket, key string) (versions, markers int) {
	t.Helper()
	out, err := srv.Client().ListObjectVersions(t.Context(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatalf("list versions: %v", err)
	}
	for _, v := range out.Versions {
		if aws.ToString(v.Key) == key {
			versions++
		}
	}
	for _, m := range out.DeleteMarkers {
		if aws.ToString(m.Key) == key {
			markers++
		}
	}
	return versions, markers
}

// TestMinIOObjectLock: on a bucket with Object Lock, single and multipart
// uploads carry the retention asked for, Delete is refused with
// storage.ErrLocked and leaves the object visible (no delete marker),
// ExtendLock lengthens and never shortens, and an unlocked object's Delete
// removes every version.
func TestMinIOObjectLock(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewLockedBucket(t)
	opts := minioOptions(srv, bucket)
	opts.ObjectLockMode, opts.ObjectLockDays = "governance", 1
	st := newMinIOStore(t, opts)
	ctx := t.Context()
	start := time.Now()

	small := []byte("locked")
	large := bytes.Repeat([]byte("x"), MinPartSize+1) // two parts
	for key, data := range map[string][]byte{"small": small, "large": large} {
		if err := st.Create(ctx, key, bytes.NewReader(data)); err != nil {
			t.Fatalf("create %s: %v", key, err)
		}
		until, err := st.LockedUntil(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if want := start.Add(24 * time.Hour); until.Before(want.Add(-2*time.Second)) || until.After(want.Add(time.Minute)) {
			t.Errorf("%s locked until %s, want about %s", key, until, want)
		}
		err = st.Delete(ctx, key)
		if !errors.Is(err, storage.ErrLocked) || !errors.Is(err, storage.ErrPermanent) {
			t.Fatalf("delete locked %s = %v, want ErrLocked", key, err)
		}
		t.Logf("delete of a locked object: %v", err)
		if _, err := st.Stat(ctx, key); err != nil {
			t.Errorf("locked %s after refused delete: %v", key, err)
		}
		if v, m := versionsOf(t, srv, bucket, key); v != 1 || m != 0 {
			t.Errorf("%s: %d versions, %d delete markers; want 1, 0", key, v, m)
		}
	}

	// Extend through the retry wrapper, as retain sees the store.
	locker, ok := storage.LockerOf(retry.New(st, retry.Policy{}))
	if !ok {
		t.Fatal("LockerOf(retry store) found no Locker")
	}
	later := start.Add(72 * time.Hour)
	if err := locker.ExtendLock(ctx, "small", later); err != nil {
		t.Fatal(err)
	}
	if err := locker.ExtendLock(ctx, "small", start.Add(time.Hour)); err != nil { // never shortens
		t.Fatal(err)
	}
	if until, err := locker.LockedUntil(ctx, "small"); err != nil || until.Before(later) {
		t.Errorf("after extend: locked until %s, %v; want at least %s", until, err, later)
	}
	if _, err := locker.LockedUntil(ctx, "absent"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("LockedUntil(absent) = %v, want ErrNotExist", err)
	}

	// An object without retention (written by a store without a lock
	// mode) goes with all its versions.
	plain := newMinIOStore(t, minioOptions(srv, bucket))
	for range 2 {
		if err := plain.Put(ctx, "plain", strings.NewReader("v")); err != nil {
			t.Fatal(err)
		}
	}
	if until, err := plain.LockedUntil(ctx, "plain"); err != nil || !until.IsZero() {
		t.Errorf("LockedUntil(plain) = %s, %v; want zero", until, err)
	}
	if err := plain.Delete(ctx, "plain"); err != nil {
		t.Fatal(err)
	}
	if v, m := versionsOf(t, srv, bucket, "plain"); v != 0 || m != 0 {
		t.Errorf("plain after delete: %d versions, %d delete markers; want none", v, m)
	}
	// The same through a store that knows the bucket is locked.
	if err := plain.Put(ctx, "plain2", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "plain2"); err != nil {
		t.Fatal(err)
	}
	if v, m := versionsOf(t, srv, bucket, "plain2"); v != 0 || m != 0 {
		t.Errorf("plain2 after delete: %d versions, %d delete markers; want none", v, m)
	}
	if err := st.Delete(ctx, "never-stored"); err != nil {
		t.Errorf("delete missing key: %v", err)
	}
	// A plain store on the locked bucket still refuses to hide a locked
	// object behind a delete marker.
	if err := plain.Delete(ctx, "small"); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("plain delete of locked object = %v, want ErrLocked", err)
	}
	if v, m := versionsOf(t, srv, bucket, "small"); v != 1 || m != 0 {
		t.Errorf("small: %d versions, %d delete markers; want 1, 0", v, m)
	}
}

// TestMinIONoDeleteUser: a credential whose policy denies s3:DeleteObject
// writes and reads, and its Delete fails with AccessDenied, permanent and
// not ErrLocked.
func TestMinIONoDeleteUser(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	u := srv.NoDeleteUser(t, bucket)
	opts := minioOptions(srv, bucket)
	opts.Credentials = credentials.NewStaticCredentialsProvider(u.AccessKey, u.SecretKey, "")
	st := newMinIOStore(t, opts)
	ctx := t.Context()
	if err := st.Put(ctx, "a", bytes.NewReader(bytes.Repeat([]byte("y"), MinPartSize+1))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	err := st.Delete(ctx, "a")
	if err == nil || !errors.Is(err, storage.ErrPermanent) || errors.Is(err, storage.ErrLocked) {
		t.Fatalf("delete with no-delete credential = %v, want a permanent AccessDenied", err)
	}
	t.Logf("delete with no-delete credential: %v", err)
	if _, err := st.Stat(ctx, "a"); err != nil {
		t.Fatal(err)
	}
}

// TestMinIOLockWithoutLockedBucket: a store set to lock on a bucket made
// without Object Lock fails its uploads at once (permanent: no retry can
// help), naming the cause.
func TestMinIOLockWithoutLockedBucket(t *testing.T) {
	srv := testenv.MinIO(t)
	opts := minioOptions(srv, srv.NewBucket(t))
	opts.ObjectLockMode, opts.ObjectLockDays = "compliance", 1
	st := newMinIOStore(t, opts)
	for _, data := range [][]byte{[]byte("small"), bytes.Repeat([]byte("x"), MinPartSize+1)} {
		err := st.Put(t.Context(), "k", bytes.NewReader(data))
		if err == nil || !errors.Is(err, storage.ErrPermanent) || !strings.Contains(strings.ToLower(err.Error()), "object lock") {
			t.Errorf("put of %d bytes = %v, want a permanent error naming Object Lock", len(data), err)
		}
		t.Logf("put of %d bytes: %v", len(data), err)
	}
	plain := newMinIOStore(t, minioOptions(srv, opts.Bucket))
	if err := plain.Put(t.Context(), "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	if until, err := plain.LockedUntil(t.Context(), "k"); err != nil || !until.IsZero() {
		t.Errorf("LockedUntil on a bucket without Object Lock = %s, %v; want zero", until, err)
	}
	if err := plain.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
}
