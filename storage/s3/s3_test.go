package s3

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

const testBucket = "bucket"

// testOptions are Options for a server at endpoint, with small parts.
func testOptions(endpoint string) Options {
	return Options{
		Bucket:         testBucket,
		Endpoint:       endpoint,
		Region:         "us-east-1",
		ForcePathStyle: true,
		PartSize:       MinPartSize,
		Concurrency:    3,
		MaxAttempts:    2,
		Credentials:    credentials.NewStaticCredentialsProvider("key", "secret", ""),
	}
}

// startFake serves a new fakeS3 and returns it with a store using it.
func startFake(t *testing.T, edit func(*Options)) (*fakeS3, *Store) {
	t.Helper()
	fake := newFakeS3(testBucket)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	opts := testOptions(srv.URL)
	if edit != nil {
		edit(&opts)
	}
	s, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return fake, s
}

func TestConformanceFake(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		fake, s := startFake(t, nil)
		fake.pageSize = 3 // exercise pagination
		t.Cleanup(func() {
			if n := fake.uploadCount(); n != 0 {
				t.Errorf("%d multipart uploads left behind", n)
			}
			if fake.noMD5 != 0 {
				t.Errorf("%d uploads without Content-MD5", fake.noMD5)
			}
		})
		return s
	})
}

func TestPutRequests(t *testing.T) {
	tests := []struct {
		size int
		want []string
	}{
		{0, []string{"PUT PutObject"}},
		{1000, []string{"PUT PutObject"}},
		{MinPartSize, []string{"PUT PutObject"}},
		{MinPartSize + 1, []string{"POST CreateMultipartUpload", "PUT UploadPart", "PUT UploadPart", "POST CompleteMultipartUpload"}},
		{2 * MinPartSize, []string{"POST CreateMultipartUpload", "PUT UploadPart", "PUT UploadPart", "POST CompleteMultipartUpload"}},
	}
	for _, tt := range tests {
		fake, s := startFake(t, nil)
		data := bytes.Repeat([]byte{'x'}, tt.size)
		if err := s.Put(t.Context(), "k", bytes.NewReader(data)); err != nil {
			t.Fatalf("Put of %d bytes: %v", tt.size, err)
		}
		if got := fake.ops(); !slices.Equal(got, tt.want) {
			t.Errorf("Put of %d bytes sent %q, want %q", tt.size, got, tt.want)
		}
		if got := fake.objects["k"].data; !bytes.Equal(got, data) {
			t.Errorf("stored %d bytes, want %d", len(got), len(data))
		}
	}
}

func TestPutConcurrency(t *testing.T) {
	fake, s := startFake(t, func(o *Options) { o.Concurrency = 2 })
	fake.partDelay = 50 * time.Millisecond
	if err := s.Put(t.Context(), "k", bytes.NewReader(make([]byte, 6*MinPartSize))); err != nil {
		t.Fatal(err)
	}
	if fake.maxInflight != 2 {
		t.Errorf("%d parts uploaded at once, want 2", fake.maxInflight)
	}
}

func TestPutPartRetried(t *testing.T) {
	fake, s := startFake(t, nil)
	fake.failPart = func(n int32, attempt int) int {
		if n == 2 && attempt == 1 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	data := bytes.Repeat([]byte("0123456789"), 2*MinPartSize/10)
	if err := s.Put(t.Context(), "k", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if fake.partAttempt[2] != 2 {
		t.Errorf("part 2 sent %d times, want 2", fake.partAttempt[2])
	}
	if !bytes.Equal(fake.objects["k"].data, data) {
		t.Error("stored object differs")
	}
}

func TestPutPartFailsAborts(t *testing.T) {
	fake, s := startFake(t, nil)
	fake.failPart = func(n int32, _ int) int {
		if n == 3 {
			return http.StatusForbidden
		}
		return 0
	}
	err := s.Put(t.Context(), "k", bytes.NewReader(make([]byte, 5*MinPartSize)))
	if err == nil || !strings.Contains(err.Error(), "upload part 3") {
		t.Fatalf("Put = %v, want part 3 to fail", err)
	}
	if !slices.Contains(fake.ops(), "DELETE AbortMultipartUpload") {
		t.Errorf("no abort in %q", fake.ops())
	}
	if n := fake.uploadCount(); n != 0 {
		t.Errorf("%d uploads left", n)
	}
	if _, err := s.Stat(t.Context(), "k"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat = %v, want ErrNotExist", err)
	}
}

// corrupting flips a byte of every upload body after the SDK has built the
// request, as a faulty network or proxy might.
type corrupting struct{ next http.RoundTripper }

func (c corrupting) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.Body != nil && r.ContentLength > 0 {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		b[len(b)/2] ^= 1
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return c.next.RoundTrip(r)
}

func TestCorruptionRejected(t *testing.T) {
	for _, size := range []int{100, 3 * MinPartSize} {
		fake, s := startFake(t, func(o *Options) {
			o.HTTPClient = &http.Client{Transport: corrupting{http.DefaultTransport}}
		})
		err := s.Put(t.Context(), "k", bytes.NewReader(make([]byte, size)))
		if err == nil || !strings.Contains(err.Error(), "BadDigest") {
			t.Errorf("Put of %d corrupted bytes = %v, want BadDigest", size, err)
		}
		if _, ok := fake.objects["k"]; ok || fake.uploadCount() != 0 {
			t.Errorf("Put of %d corrupted bytes left an object or an upload", size)
		}
	}
}

func TestMissingBucketIsNotAbsence(t *testing.T) {
	_, s := startFake(t, func(o *Options) { o.Bucket = "other" })
	if _, err := s.Stat(t.Context(), "k"); err == nil || errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat in a missing bucket = %v, want an error other than ErrNotExist", err)
	}
	if _, err := s.Get(t.Context(), "k"); err == nil || errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Get in a missing bucket = %v, want an error other than ErrNotExist", err)
	}
	if err := s.List(t.Context(), "", func(storage.ObjectInfo) error { return nil }); err == nil {
		t.Error("List in a missing bucket succeeded")
	}
}

func TestPrefix(t *testing.T) {
	fake := newFakeS3(testBucket)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	stores := map[string]*Store{}
	for _, prefix := range []string{"/p/q/", "p", "pq"} {
		opts := testOptions(srv.URL)
		opts.Prefix = prefix
		s, err := New(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		stores[prefix] = s
		if err := s.Put(t.Context(), "k", strings.NewReader(prefix)); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for k := range fake.objects {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"p/k", "p/q/k", "pq/k"}; !slices.Equal(keys, want) {
		t.Errorf("bucket holds %q, want %q", keys, want)
	}
	var listed []string
	if err := stores["p"].List(t.Context(), "", func(oi storage.ObjectInfo) error {
		listed = append(listed, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"k", "q/k"}; !slices.Equal(listed, want) {
		t.Errorf("store p lists %q, want %q", listed, want)
	}
}

// closedEndpoint returns the URL of a local port nobody listens on.
func closedEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestServerDown(t *testing.T) {
	s, err := New(t.Context(), testOptions(closedEndpoint(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	errs := map[string]error{}
	errs["put"] = s.Put(ctx, "k", strings.NewReader("x"))
	errs["put multipart"] = s.Put(ctx, "k", bytes.NewReader(make([]byte, 2*MinPartSize)))
	_, errs["get"] = s.Get(ctx, "k")
	_, errs["stat"] = s.Stat(ctx, "k")
	errs["list"] = s.List(ctx, "", func(storage.ObjectInfo) error { return nil })
	errs["delete"] = s.Delete(ctx, "k")
	for op, err := range errs {
		if !errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, storage.ErrNotExist) {
			t.Errorf("%s = %v, want connection refused", op, err)
		}
	}
	if ctx.Err() != nil {
		t.Error("calls took until the deadline")
	}
}

// TestCABundle checks the SDK's loader adds AWS_CA_BUNDLE to our client.
func TestCABundle(t *testing.T) {
	fake := newFakeS3(testBucket)
	srv := httptest.NewUnstartedServer(fake)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is expected
	srv.StartTLS()
	defer srv.Close()
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(bundle, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Setenv("AWS_CA_BUNDLE", "")
	s, err := New(t.Context(), testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "k", strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Put without the CA bundle = %v, want a certificate error", err)
	}

	t.Setenv("AWS_CA_BUNDLE", bundle)
	s, err = New(t.Context(), testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "k", strings.NewReader("x")); err != nil {
		t.Errorf("Put with AWS_CA_BUNDLE: %v", err)
	}
}

func TestNewOptions(t *testing.T) {
	base := testOptions("http://127.0.0.1:9000")
	tests := []struct {
		name string
		edit func(*Options)
		ok   bool
	}{
		{"defaults", func(o *Options) { o.PartSize, o.Concurrency, o.MaxAttempts = 0, 0, 0 }, true},
		{"no bucket", func(o *Options) { o.Bucket = "" }, false},
		{"sse aes", func(o *Options) { o.SSE = "AES256" }, true},
		{"sse kms", func(o *Options) { o.SSE, o.SSEKMSKeyID = "aws:kms", "key" }, true},
		{"kms key without kms", func(o *Options) { o.SSEKMSKeyID = "key" }, false},
		{"unknown sse", func(o *Options) { o.SSE = "rot13" }, false},
		{"small parts", func(o *Options) { o.PartSize = 1 << 20 }, false},
		{"huge parts", func(o *Options) { o.PartSize = 6 << 30 }, false},
		{"bad prefix", func(o *Options) { o.Prefix = "a/../b" }, false},
		{"bad endpoint", func(o *Options) { o.Endpoint = "127.0.0.1:9000" }, false},
		{"no region with endpoint", func(o *Options) { o.Region = "" }, true},
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	for _, tt := range tests {
		opts := base
		tt.edit(&opts)
		s, err := New(t.Context(), opts)
		if (err == nil) != tt.ok {
			t.Errorf("%s: New = %v, want ok %v", tt.name, err, tt.ok)
		}
		if tt.name == "defaults" && err == nil && (s.partSize != DefaultPartSize || s.concurrency != 4) {
			t.Errorf("defaults: part size %d, concurrency %d", s.partSize, s.concurrency)
		}
	}
	opts := base
	opts.Endpoint, opts.Region = "", ""
	if _, err := New(t.Context(), opts); err == nil {
		t.Error("New without region or endpoint succeeded")
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url, bucket, prefix string
		ok                  bool
	}{
		{"s3://bucket", "bucket", "", true},
		{"s3://bucket/", "bucket", "", true},
		{"s3://bucket/some/prefix", "bucket", "some/prefix", true},
		{"s3://bucket/some/prefix/", "bucket", "some/prefix", true},
		{"s3://my.bucket-1/p", "my.bucket-1", "p", true},
		{"s3:///prefix", "", "", false},
		{"s3://bucket/a//b", "", "", false},
		{"s3://bucket/a/../b", "", "", false},
		{"s3://bucket:9000/p", "", "", false},
		{"s3://bucket/p?region=x", "", "", false},
		{"file:///x", "", "", false},
		{"bucket/prefix", "", "", false},
	}
	for _, tt := range tests {
		bucket, prefix, err := ParseURL(tt.url)
		if (err == nil) != tt.ok || bucket != tt.bucket || prefix != tt.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, ok %v", tt.url, bucket, prefix, err, tt.bucket, tt.prefix, tt.ok)
		}
	}
}

// TestCreateConflicts: the answers to a refused conditional write wrap
// ErrExist; others do not.
func TestCreateConflicts(t *testing.T) {
	tests := []struct {
		status int
		code   string
		exist  bool
	}{
		{http.StatusPreconditionFailed, "PreconditionFailed", true},
		{http.StatusConflict, "ConditionalRequestConflict", true},
		{http.StatusConflict, "OperationAborted", false},
		{http.StatusForbidden, "AccessDenied", false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("If-None-Match") != "*" {
					writeError(w, r, http.StatusBadRequest, "NoCondition")
					return
				}
				writeError(w, r, tt.status, tt.code)
			}))
			t.Cleanup(srv.Close)
			s, err := New(t.Context(), testOptions(srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Create(t.Context(), "k", strings.NewReader("x"))
			if err == nil || errors.Is(err, storage.ErrExist) != tt.exist {
				t.Errorf("Create = %v, want ErrExist %v", err, tt.exist)
			}
		})
	}
}

// TestNoConditionalWrites: a store that ignores If-None-Match (here: the
// fake told nothing) is covered by a HeadObject check first.
func TestNoConditionalWrites(t *testing.T) {
	fake, s := startFake(t, func(o *Options) { o.NoConditionalWrites = true })
	if err := s.Create(t.Context(), "k", strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(t.Context(), "k", strings.NewReader("second")); !errors.Is(err, storage.ErrExist) {
		t.Fatalf("second Create = %v, want ErrExist", err)
	}
	if ops := fake.ops(); !slices.Contains(ops, "HEAD HeadObject") {
		t.Errorf("requests %q, want a HeadObject", ops)
	}
}
