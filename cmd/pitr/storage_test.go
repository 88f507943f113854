package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/testenv"
)

// silentStoreEnv loads settings from vars only, as the command does from PITR_*.
func silentStoreEnv(t *testing.T, vars map[string]string) *env {
	t.Helper()
	// The SDK's credential chain: static keys, no profile or instance role.
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	e := &env{stdout: io.Discard, stderr: io.Discard}
	if err := e.load("", func(k string) (string, bool) { v, ok := vars[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	e.log = newLogger(io.Discard, "error", "json")
	return e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// TestWALCommandsSilentStore: wal-push and wal-fetch against a store that
// never answers fail with a timeout within retry_timeout, instead of
// holding up PostgreSQL's archiver (and pg_wal) or recovery for ever.
func TestWALCommandsSilentStore(t *testing.T) {
	vars := map[string]string{
		"PITR_REPO":            "s3://bucket/db1",
		"PITR_S3_ENDPOINT":     testenv.SilentEndpoint(t),
		"PITR_ENCRYPTION":      "none",
		"PITR_STORAGE_TIMEOUT": "300ms",
		"PITR_RETRY_TIMEOUT":   "2s",
		"PITR_FETCH_PREFETCH":  "0",
	}
	pgwal := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.MkdirAll(filepath.Join(pgwal, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(pgwal, "000000010000000000000003")
	if err := os.WriteFile(seg, bytes.Repeat([]byte("wal "), 1<<12), 0o600); err != nil {
		t.Fatal(err)
	}
	// Generous: only there so that a regression fails instead of hanging.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	err := runWALPush(ctx, silentStoreEnv(t, vars), seg)
	if ctx.Err() != nil {
		t.Fatalf("wal-push ran into the test's own bound: %v", err)
	}
	if !isTimeout(err) || !strings.Contains(err.Error(), "retry_timeout") {
		t.Errorf("wal-push = %v, want a timeout naming retry_timeout", err)
	}

	err = runWALFetch(ctx, silentStoreEnv(t, vars), "000000010000000000000003", filepath.Join(t.TempDir(), "RECOVERYXLOG"))
	if ctx.Err() != nil {
		t.Fatalf("wal-fetch ran into the test's own bound: %v", err)
	}
	if !isTimeout(err) {
		t.Errorf("wal-fetch = %v, want a timeout", err)
	}
	var ec exitCodeError
	if !errors.As(fetchExit(err), &ec) || ec.code <= 125 {
		t.Errorf("wal-fetch timing out would exit %d, want > 125", ec.code)
	}
}
