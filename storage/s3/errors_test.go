package s3

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pitr-dev/pitr/storage"
)

// TestPermanentErrors: answers no retry can fix wrap storage.ErrPermanent
// and are sent once; server errors are retried and stay transient.
func TestPermanentErrors(t *testing.T) {
	tests := []struct {
		status    int
		code      string
		permanent bool
	}{
		{http.StatusForbidden, "SignatureDoesNotMatch", true},
		{http.StatusForbidden, "InvalidAccessKeyId", true},
		{http.StatusForbidden, "AccessDenied", true},
		{http.StatusNotFound, "NoSuchBucket", true},
		{http.StatusBadRequest, "AuthorizationHeaderMalformed", true},
		{http.StatusServiceUnavailable, "SlowDown", false},
		{http.StatusInternalServerError, "InternalError", false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				writeError(w, r, tt.status, tt.code)
			}))
			t.Cleanup(srv.Close)
			opts := testOptions(srv.URL)
			opts.MaxAttempts = 2
			s, err := New(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			ops := []struct {
				name string
				call func() error
			}{
				{"put", func() error { return s.Put(ctx, "k", strings.NewReader("x")) }},
				{"put multipart", func() error { return s.Put(ctx, "k", bytes.NewReader(make([]byte, 2*MinPartSize+1))) }},
				{"get", func() error { _, err := s.Get(ctx, "k"); return err }},
				{"stat", func() error { _, err := s.Stat(ctx, "k"); return err }}, // HEAD: a status, no code
				{"list", func() error { return s.List(ctx, "", func(storage.ObjectInfo) error { return nil }) }},
				{"delete", func() error { return s.Delete(ctx, "k") }},
				{"list uploads", func() error { return s.ListUploads(ctx, "", func(storage.Upload) error { return nil }) }},
				{"abort upload", func() error { return s.AbortUpload(ctx, "k", "id") }},
			}
			for _, op := range ops {
				if op.name == "stat" && tt.status == http.StatusBadRequest {
					continue // a HEAD answer has no code, and a 400 may be anything
				}
				if !tt.permanent && op.name != "get" {
					continue // one is enough, and the SDK's backoff takes seconds
				}
				requests.Store(0)
				err := op.call()
				if err == nil || errors.Is(err, storage.ErrNotExist) {
					t.Errorf("%s = %v, want an error", op.name, err)
					continue
				}
				if got := errors.Is(err, storage.ErrPermanent); got != tt.permanent {
					t.Errorf("%s: permanent = %v, want %v: %v", op.name, got, tt.permanent, err)
				}
				n := requests.Load()
				switch {
				case tt.permanent && op.name == "stat" && tt.code == "NoSuchBucket":
					// HEAD 404, then the listing that tells the bucket is missing.
					if n != 2 {
						t.Errorf("%s: %d requests, want 2", op.name, n)
					}
				case tt.permanent && n != 1:
					t.Errorf("%s: %d requests, want 1 (no retry)", op.name, n)
				case !tt.permanent && n < 2:
					t.Errorf("%s: %d requests, want retries", op.name, n)
				}
			}
		})
	}
}
