//go:build integration

package main

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pitr-dev/pitr/internal/testenv"
)

// s3Proxy forwards to MinIO and records every request; with holdParts set
// it holds UploadPart requests until the test ends, so that a multipart
// upload stays in flight for as long as the test needs.
type s3Proxy struct {
	URL string

	mu        sync.Mutex
	requests  []string // "METHOD /path?query"
	retries   []string // requests the SDK marked as a retry (attempt > 1)
	created   []string // object keys of CreateMultipartUpload
	heldParts map[string]bool
	held      chan struct{} // gets a value per upload id whose part is held
	holdParts bool
}

func newS3Proxy(t *testing.T, endpoint string) *s3Proxy {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &s3Proxy{heldParts: map[string]bool{}, held: make(chan struct{}, 16)}
	release := make(chan struct{})
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p.mu.Lock()
		p.requests = append(p.requests, r.Method+" "+r.URL.RequestURI())
		if a := r.Header.Get("Amz-Sdk-Request"); a != "" && !strings.HasPrefix(a, "attempt=1;") {
			p.retries = append(p.retries, r.Method+" "+r.URL.RequestURI()+" "+a)
		}
		if r.Method == http.MethodPost && q.Has("uploads") {
			p.created = append(p.created, r.URL.Path)
		}
		hold := p.holdParts && r.Method == http.MethodPut && q.Has("uploadId")
		if hold && !p.heldParts[q.Get("uploadId")] {
			p.heldParts[q.Get("uploadId")] = true
			p.held <- struct{}{}
		}
		p.mu.Unlock()
		if hold {
			<-release
			http.Error(w, "released", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close) // after release: a held handler must return first
	t.Cleanup(func() { close(release) })
	p.URL = srv.URL
	return p
}

// take returns the requests recorded so far, and those the SDK marked as
// retries, and forgets them.
func (p *s3Proxy) take() (requests, retries []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	requests, retries = p.requests, p.retries
	p.requests, p.retries = nil, nil
	return requests, retries
}

func (p *s3Proxy) uploadsCreated() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.created...)
}

// randomSegment writes an incompressible WAL segment and marks it .ready.
func randomSegment(t *testing.T, pgwal, name string) string {
	t.Helper()
	b := make([]byte, 16<<20)
	rand.Read(b)
	p := filepath.Join(pgwal, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pgwal, "archive_status", name+".ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newPGWAL(t *testing.T) string {
	t.Helper()
	pgwal := filepath.Join(testenv.Dir(t), "pg_wal")
	if err := os.MkdirAll(filepath.Join(pgwal, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	return pgwal
}

// TestWALPermanentStorageErrors: a wrong secret, an unknown access key or a
// missing bucket fail wal-push and wal-fetch at the first answer: no
// request is sent twice and wal-fetch logs no retry, and wal-fetch exits
// above 125 (never 1, which would end recovery early).
func TestWALPermanentStorageErrors(t *testing.T) {
	r := newRig(t, "minio")
	pgwal := newPGWAL(t)
	seg := filepath.Join(pgwal, "000000010000000000000003")
	if err := os.WriteFile(seg, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := r.run("wal-push", seg); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	dest := filepath.Join(testenv.Dir(t), "RECOVERYXLOG")
	for _, tt := range []struct {
		name string
		env  []string
		want string
	}{
		{"wrong secret", []string{"AWS_SECRET_ACCESS_KEY=wrong" + r.minio.SecretKey}, "SignatureDoesNotMatch"},
		{"unknown access key", []string{"AWS_ACCESS_KEY_ID=nobody"}, "InvalidAccessKeyId"},
		{"missing bucket", []string{"PITR_REPO=s3://no-such-bucket/db1"}, "NoSuchBucket|bucket does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxy := newS3Proxy(t, r.minio.Endpoint)
			// Long enough that retrying would show in the log and in the requests.
			env := append([]string{"PITR_S3_ENDPOINT=" + proxy.URL, "PITR_RETRY_TIMEOUT=20s", "PITR_FETCH_PREFETCH=0"}, tt.env...)

			noRetries := func(cmd string) {
				t.Helper()
				requests, retries := proxy.take()
				seen := map[string]bool{}
				for _, req := range requests {
					if seen[req] {
						t.Errorf("%s sent a request again: %s", cmd, req)
					}
					seen[req] = true
				}
				if len(retries) > 0 {
					t.Errorf("%s: the SDK retried: %q", cmd, retries)
				}
				if len(requests) == 0 {
					t.Errorf("%s: no request reached the store", cmd)
				}
			}
			names := func(stderr string) bool {
				for _, w := range strings.Split(tt.want, "|") {
					if strings.Contains(stderr, w) {
						return true
					}
				}
				return false
			}
			_, stderr, code := r.runEnv(env, "wal-push", seg)
			if code == 0 || !names(stderr) {
				t.Errorf("wal-push: exit %d, stderr %q; want a failure naming %s", code, stderr, tt.want)
			}
			noRetries("wal-push")
			_, stderr, code = r.runEnv(env, "wal-fetch", "000000010000000000000003", dest)
			if code <= 125 || !names(stderr) {
				t.Errorf("wal-fetch: exit %d, stderr %q; want > 125 naming %s", code, stderr, tt.want)
			}
			if strings.Contains(stderr, "retrying") {
				t.Errorf("wal-fetch retried a permanent error: %s", stderr)
			}
			noRetries("wal-fetch")
		})
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("wal-fetch left %s: %v", dest, err)
	}
}

// TestWALPushKilledMidMultipart kills wal-push (-9) while its multipart
// uploads (the segment asked for and a look-ahead one) are in flight. The
// next call removes the spool temp files the killed one left and aborts its
// uploads, and archives both segments.
func TestWALPushKilledMidMultipart(t *testing.T) {
	r := newRig(t, "minio")
	pgwal := newPGWAL(t)
	seg := randomSegment(t, pgwal, "000000010000000000000003")
	randomSegment(t, pgwal, "000000010000000000000004") // pushed by look-ahead
	proxy := newS3Proxy(t, r.minio.Endpoint)
	proxy.mu.Lock()
	proxy.holdParts = true
	proxy.mu.Unlock()
	// In-process look-ahead: a call that starts a resident pusher pushes
	// its own segment alone.
	env := []string{"PITR_S3_PART_SIZE_MIB=5", "PITR_PUSH_CONCURRENCY=2", "PITR_PUSH_RESIDENT=false"}

	cmd := exec.Command(r.pitr, "wal-push", seg)
	cmd.Env = append(append(append(os.Environ(), r.env...), env...), "PITR_S3_ENDPOINT="+proxy.URL)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // both uploads started and sending parts
		select {
		case <-proxy.held:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill() // the test fails below either way
			_ = cmd.Wait()
			t.Fatalf("uploads did not start: %s", out.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed"

	tmp := filepath.Join(pgwal, "pitr", "tmp")
	left, _ := os.ReadDir(tmp)
	created := proxy.uploadsCreated()
	keys := make([]string, len(created))
	for i, path := range created {
		keys[i] = strings.TrimPrefix(path, "/"+r.bucket+"/")
	}
	if len(left) == 0 || len(keys) != 2 || countUploads(t, r, keys) != 2 {
		t.Fatalf("the kill left %d spool files and uploads of %q: the test did not kill mid-upload", len(left), keys)
	}

	if _, stderr, code := r.runEnv(env, "wal-push", seg); code != 0 {
		t.Fatalf("wal-push after the kill: exit %d: %s", code, stderr)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("spool temp files left after the next call: %q", names)
	}
	if n := countUploads(t, r, keys); n != 0 {
		t.Errorf("%d incomplete multipart uploads left for %q", n, keys)
	}
	for _, name := range []string{"000000010000000000000003", "000000010000000000000004"} {
		if _, stderr, code := r.runEnv([]string{"PITR_FETCH_PREFETCH=0"}, "wal-fetch", name, filepath.Join(testenv.Dir(t), name)); code != 0 {
			t.Errorf("%s not archived after the next call: exit %d: %s", name, code, stderr)
		}
	}
}

// countUploads counts incomplete multipart uploads of the object keys
// (MinIO lists uploads by whole key only).
func countUploads(t *testing.T, r *rig, keys []string) int {
	t.Helper()
	n := 0
	for _, key := range keys {
		out, err := r.minio.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{
			Bucket: aws.String(r.bucket), Prefix: aws.String(key),
		})
		if err != nil {
			t.Fatalf("list multipart uploads of %s: %v", key, err)
		}
		n += len(out.Uploads)
	}
	return n
}
