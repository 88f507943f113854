//go:build integration

package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// minioOptions are Options for bucket on srv, with small parts.
func minioOptions(srv *testenv.MinIOServer, bucket string) Options {
	return Options{
		Bucket:         bucket,
		Endpoint:       srv.Endpoint,
		Region:         srv.Region,
		ForcePathStyle: true,
		PartSize:       MinPartSize,
		Concurrency:    3,
		MaxAttempts:    3,
		Credentials:    credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	}
}

func newMinIOStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertNoUploads checks no multipart upload was left in bucket.
func assertNoUploads(t *testing.T, srv *testenv.MinIOServer, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Errorf("list multipart uploads: %v", err)
		return
	}
	for _, u := range out.Uploads {
		t.Errorf("multipart upload of %s left behind", aws.ToString(u.Key))
	}
}

func TestStoreMinIO(t *testing.T) {
	srv := testenv.MinIO(t)
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		bucket := srv.NewBucket(t)
		t.Cleanup(func() { assertNoUploads(t, srv, bucket) })
		return newMinIOStore(t, minioOptions(srv, bucket))
	})
}

func TestMinIOPrefixes(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	ctx := t.Context()
	var stores []*Store
	for _, prefix := range []string{"one", "one/two", "onetwo"} {
		opts := minioOptions(srv, bucket)
		opts.Prefix = prefix
		s := newMinIOStore(t, opts)
		stores = append(stores, s)
		if err := s.Put(ctx, "wal/k", strings.NewReader(prefix)); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range stores {
		rc, err := s.Get(ctx, "wal/k")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"one", "one/two", "onetwo"}[i]; string(got) != want {
			t.Errorf("store %d reads %q, want %q", i, got, want)
		}
	}
	var keys []string
	if err := stores[0].List(ctx, "", func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"two/wal/k", "wal/k"}; !slices.Equal(keys, want) {
		t.Errorf("store one lists %q, want %q", keys, want)
	}
	if err := stores[2].Delete(ctx, "wal/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[0].Stat(ctx, "wal/k"); err != nil {
		t.Errorf("Delete in another prefix removed this one's object: %v", err)
	}
}

// TestMinIOEnvCredentials uses the SDK's standard chain, as pitr does.
func TestMinIOEnvCredentials(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	s := newMinIOStore(t, Options{Bucket: bucket, Endpoint: srv.Endpoint, ForcePathStyle: true, StorageClass: "STANDARD"})
	if err := s.Put(t.Context(), "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
}

// TestMinIOChecksContentMD5: bytes changed after we computed Content-MD5
// are refused by the server, and nothing is stored.
func TestMinIOChecksContentMD5(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	opts := minioOptions(srv, bucket)
	opts.HTTPClient = &http.Client{Transport: corrupting{http.DefaultTransport}}
	s := newMinIOStore(t, opts)
	for _, size := range []int{100, 2*MinPartSize + 1} {
		err := s.Put(t.Context(), "k", bytes.NewReader(make([]byte, size)))
		if err == nil || !strings.Contains(err.Error(), "BadDigest") {
			t.Errorf("Put of %d corrupted bytes = %v, want BadDigest", size, err)
		}
	}
	if _, err := s.Stat(t.Context(), "k"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat after corrupted Puts = %v, want ErrNotExist", err)
	}
	assertNoUploads(t, srv, bucket)
}

// TestMinIOChecksCRC32C: MinIO answers the first PutObject (Content-MD5
// and CRC32C) with our CRC32C, so later ones carry CRC32C alone, and MinIO
// refuses bytes changed after we computed it; nothing is stored. As over
// TLS, the payload is not signed: the checksum alone must catch it.
func TestMinIOChecksCRC32C(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	opts := minioOptions(srv, bucket)
	var corrupt atomic.Bool
	var md5s atomic.Int64
	opts.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Header.Get("Content-MD5") != "" {
			md5s.Add(1)
		}
		if r.Method == http.MethodPut && r.Header.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD" {
			t.Errorf("PUT with payload hash %q, want UNSIGNED-PAYLOAD", r.Header.Get("X-Amz-Content-Sha256"))
		}
		if corrupt.Load() {
			return corrupting{http.DefaultTransport}.RoundTrip(r)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	s := newMinIOStore(t, opts)
	s.tls = true // as over https (the test's MinIO speaks http): the body unsigned, only the checksums cover it
	if s.crcChecked.Load() {
		t.Fatal("a custom endpoint trusted to check CRC32C before it answered one")
	}
	corrupt.Store(true) // Content-MD5 and CRC32C, body unsigned
	if err := s.Create(t.Context(), "first", bytes.NewReader(make([]byte, 100))); err == nil || s.crcChecked.Load() {
		t.Fatalf("first Put of corrupted bytes = %v, want it refused", err)
	}
	corrupt.Store(false)
	if err := s.Create(t.Context(), "first", bytes.NewReader(make([]byte, 100))); err != nil {
		t.Fatal(err)
	}
	if !s.crcChecked.Load() || md5s.Load() != 2 {
		t.Fatalf("after the first PutObject: CRC32C checked %v, %d with Content-MD5", s.crcChecked.Load(), md5s.Load())
	}
	corrupt.Store(true)
	for _, key := range []string{"k", "l"} {
		put := s.Put
		if key == "l" {
			put = s.Create
		}
		err := put(t.Context(), key, bytes.NewReader(make([]byte, 1000)))
		if err == nil || !strings.Contains(err.Error(), "BadDigest") && !strings.Contains(err.Error(), "Checksum") {
			t.Errorf("Put of corrupted bytes with CRC32C alone = %v, want it refused", err)
		}
		if _, err := s.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat after a corrupted Put = %v, want ErrNotExist", err)
		}
	}
	if md5s.Load() != 2 {
		t.Errorf("%d requests with Content-MD5, want only the first two", md5s.Load())
	}
	// Parts keep Content-MD5, unsigned over TLS too.
	if err := s.Put(t.Context(), "m", bytes.NewReader(make([]byte, 2*MinPartSize+1))); err == nil || !strings.Contains(err.Error(), "BadDigest") {
		t.Errorf("multipart Put of corrupted bytes = %v, want BadDigest", err)
	}
	assertNoUploads(t, srv, bucket)
	corrupt.Store(false)
	if err := s.Put(t.Context(), "k", bytes.NewReader([]byte("fine"))); err != nil {
		t.Fatal(err)
	}
}

// TestMinIOCRC32CCache: what one store learned (MinIO checks CRC32C) is
// remembered in Options.CRC32CCache, so the next process's first
// PutObject carries no Content-MD5; a cache naming another bucket is not
// trusted.
func TestMinIOCRC32CCache(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	cache := filepath.Join(t.TempDir(), "s3-checks-crc32c")
	var md5s atomic.Int64
	opts := minioOptions(srv, bucket)
	opts.CRC32CCache = cache
	opts.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Header.Get("Content-MD5") != "" {
			md5s.Add(1)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	first := newMinIOStore(t, opts)
	if first.crcChecked.Load() {
		t.Fatal("trusted before any cache was written")
	}
	if err := first.Put(t.Context(), "a", bytes.NewReader([]byte("one"))); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(cache); err != nil || !strings.Contains(string(b), bucket) {
		t.Fatalf("cache %q (%v), want it to name bucket %s", b, err, bucket)
	}
	second := newMinIOStore(t, opts)
	if err := second.Put(t.Context(), "b", bytes.NewReader([]byte("two"))); err != nil {
		t.Fatal(err)
	}
	if n := md5s.Load(); n != 1 {
		t.Errorf("%d PutObjects with Content-MD5, want only the first store's first", n)
	}
	other := minioOptions(srv, srv.NewBucket(t))
	other.CRC32CCache = cache
	if newMinIOStore(t, other).crcChecked.Load() {
		t.Error("a cache naming another bucket was trusted")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestMinIOMissingBucket(t *testing.T) {
	srv := testenv.MinIO(t)
	s := newMinIOStore(t, minioOptions(srv, "no-such-bucket"))
	if _, err := s.Stat(t.Context(), "k"); err == nil || errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat in a missing bucket = %v, want an error other than ErrNotExist", err)
	}
	if _, err := s.Get(t.Context(), "k"); err == nil || errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Get in a missing bucket = %v, want an error other than ErrNotExist", err)
	}
	if err := s.Put(t.Context(), "k", strings.NewReader("v")); err == nil {
		t.Error("Put in a missing bucket succeeded")
	}
}

// TestMinIODown: while the server is stopped calls fail fast with
// connection refused; once it is back the same store works again.
func TestMinIODown(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	opts := minioOptions(srv, bucket)
	opts.MaxAttempts = 2
	s := newMinIOStore(t, opts)
	ctx := t.Context()
	if err := s.Put(ctx, "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	start := time.Now()
	errs := map[string]error{}
	errs["put"] = s.Put(ctx, "k2", strings.NewReader("v"))
	errs["put multipart"] = s.Put(ctx, "k3", bytes.NewReader(make([]byte, 2*MinPartSize+1)))
	_, errs["get"] = s.Get(ctx, "k")
	_, errs["stat"] = s.Stat(ctx, "k")
	errs["list"] = s.List(ctx, "", func(storage.ObjectInfo) error { return nil })
	for op, err := range errs {
		if !errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, storage.ErrNotExist) {
			t.Errorf("%s while down = %v, want connection refused", op, err)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("failing took %v", d)
	}

	srv.Start(t)
	if err := s.Put(ctx, "k2", strings.NewReader("v")); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
	if _, err := s.Stat(ctx, "k3"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat of the Put made while down = %v, want ErrNotExist", err)
	}
}

// TestMinIOUploads lists and aborts incomplete multipart uploads, as
// cleanups after a killed process do. MinIO lists the uploads of one
// object name only (a prefix of several keys lists nothing), unlike AWS.
func TestMinIOUploads(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	opts := minioOptions(srv, bucket)
	opts.Prefix = "db1"
	s := newMinIOStore(t, opts)
	ctx := t.Context()
	for _, key := range []string{"db1/backups/1/a", "db1/backups/1/a", "db1/backups/1/b", "db2/backups/1/a"} {
		if _, err := srv.Client().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix string) []storage.Upload {
		t.Helper()
		var got []storage.Upload
		if err := s.ListUploads(ctx, prefix, func(u storage.Upload) error {
			got = append(got, u)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	ups := list("backups/1/a")
	if len(ups) != 2 || ups[0].Key != "backups/1/a" || ups[0].ID == ups[1].ID || time.Since(ups[0].Initiated) > time.Hour {
		t.Fatalf("uploads of backups/1/a = %+v, want 2", ups)
	}
	if err := s.AbortUpload(ctx, ups[0].Key, ups[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.AbortUpload(ctx, ups[0].Key, ups[0].ID); err != nil {
		t.Errorf("aborting an upload that is gone = %v, want nil", err)
	}
	if got := list("backups/1/a"); len(got) != 1 || got[0].ID != ups[1].ID {
		t.Errorf("after one abort: %+v, want the other upload only", got)
	}
	if got := list("backups/1/b"); len(got) != 1 {
		t.Errorf("uploads of another key = %+v, want 1", got)
	}
	out, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: aws.String("db2/backups/1/a")})
	if err != nil || len(out.Uploads) != 1 {
		t.Errorf("another prefix's uploads: %v, %v", out, err)
	}
}

// TestMinIOCreateRaceProcesses races processes creating one key on MinIO,
// with one PutObject and as a multipart upload: one wins, the others see
// ErrExist (412 PreconditionFailed, or 409 while the winner is in flight).
func TestMinIOCreateRaceProcesses(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	st := newMinIOStore(t, minioOptions(srv, bucket))
	env := append(srv.Env(), "PITR_RACE_S3_ENDPOINT="+srv.Endpoint, "PITR_RACE_S3_BUCKET="+bucket)
	for i, size := range []int{100, MinPartSize + 1000} {
		storagetest.RaceCreate(t, st, "TestMinIOCreateRaceChild", env, 4, fmt.Sprintf("race/%d", i), size)
	}
	assertNoUploads(t, srv, bucket)
}

func TestMinIOCreateRaceChild(t *testing.T) {
	storagetest.RaceChild(t, func() (storage.Storage, error) {
		return New(t.Context(), Options{
			Bucket: os.Getenv("PITR_RACE_S3_BUCKET"), Endpoint: os.Getenv("PITR_RACE_S3_ENDPOINT"),
			ForcePathStyle: true, PartSize: MinPartSize, MaxAttempts: 3,
		})
	})
}
