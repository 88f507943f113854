package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/testenv"
)

// Retention runs when kicked; a failure is counted and the daemon keeps
// running, and the next kick runs it again.
func TestRetainerFailureDoesNotStopDaemon(t *testing.T) {
	var calls atomic.Int32
	ret := NewRetainer(func(context.Context) error {
		if calls.Add(1) == 1 {
			return errors.New("boom")
		}
		return nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Jobs: []Job{ret.Job()}, MetricsAddr: "127.0.0.1:0", Listening: func(a string) { addr <- a }})
	}()
	a := <-addr
	ret.Kick()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return calls.Load() == 1 && strings.Contains(scrape(t, a), "pitr_retain_failures_total 1"), "one failed run counted"
	})
	ret.Kick()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return calls.Load() == 2 && strings.Contains(scrape(t, a), "pitr_retain_runs_total 2"), "a second run after the failure"
	})
	var nilRetainer *Retainer
	nilRetainer.Kick() // a daemon without retention
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("daemon: %v", err)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
