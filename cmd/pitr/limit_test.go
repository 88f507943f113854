package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/storage/limit"
)

// TestLimitBadValue: a limit that is not a rate is one line naming the
// flag or variable, and exit 2, before anything is opened.
func TestLimitBadValue(t *testing.T) {
	cliEnv(t, "file://"+filepath.Join(t.TempDir(), "repo"))
	for _, tt := range []struct {
		env  string // PITR_LIMIT_UPLOAD
		args []string
		want string
	}{
		{"", []string{"list", "--limit-upload", "50MeB"}, `pitr: usage: --limit-upload: "50MeB" is not a rate in bytes per second like 50MiB`},
		{"", []string{"backup", "--limit-download=-1"}, `pitr: usage: --limit-download: "-1" is not a rate`},
		{"fast", []string{"list"}, `pitr: usage: PITR_LIMIT_UPLOAD: "fast" is not a rate`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("PITR_LIMIT_UPLOAD", tt.env)
			}
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != exitUsage || !strings.HasPrefix(stderr, tt.want) || strings.Count(stderr, "\n") != 1 || stdout != "" {
				t.Errorf("exit %d, stderr %q; want %d and one line starting %q", code, stderr, exitUsage, tt.want)
			}
		})
	}
}

// TestLimitFlagOverrides: --limit-upload wins over PITR_LIMIT_UPLOAD.
func TestLimitFlagOverrides(t *testing.T) {
	cliEnv(t, "file://"+filepath.Join(t.TempDir(), "repo"))
	t.Setenv("PITR_LIMIT_UPLOAD", "1MiB")
	t.Setenv("PITR_LIMIT_DOWNLOAD", "3MB")
	code, stdout, stderr := runCLI(t, "config", "--limit-upload", "20MiB")
	if code != exitOK || !strings.Contains(stdout, "\nlimit_upload=20MiB\n") || !strings.Contains(stdout, "\nlimit_download=3000000\n") {
		t.Errorf("exit %d, stderr %q, settings:\n%s", code, stderr, stdout)
	}
}

// TestLimitsShared: the primary and a second repository get the same
// limiter pair; without limits the stores are not wrapped.
func TestLimitsShared(t *testing.T) {
	e := testEnv("file://" + filepath.Join(t.TempDir(), "repo"))
	e.cfg.LimitUpload, e.cfg.LimitDownload = 20<<20, 0
	primary, err := e.open(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.OpenSecond(t.Context(), config.Repository{Repo: "file://" + t.TempDir()}, false, true)
	if err != nil {
		t.Fatal(err)
	}
	a, okA := primary.(*limit.Store)
	b, okB := second.(*limit.Store)
	if !okA || !okB {
		t.Fatalf("stores %T and %T, want *limit.Store", primary, second)
	}
	upA, downA := a.Limiters()
	upB, downB := b.Limiters()
	if upA == nil || upA != upB || downA != nil || downB != nil {
		t.Errorf("limiters %p/%p and %p/%p: want one shared upload limiter, no download limiter", upA, downA, upB, downB)
	}
	if upA.Limit() != 20<<20 {
		t.Errorf("upload limit %v bytes/s, want %d", upA.Limit(), 20<<20)
	}

	e = testEnv("file://" + filepath.Join(t.TempDir(), "repo"))
	st, err := e.open(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*limit.Store); ok {
		t.Error("unlimited, yet the store is wrapped")
	}
}
