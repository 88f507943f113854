//go:build integration

package testenv_test

import (
	"testing"

	"github.com/pitr-dev/pitr/internal/testenv"
)

// TestRedisRestartOnDump: a server started on the directory another one
// saved into has its keys, as one started on a restored dump.rdb must.
func TestRedisRestartOnDump(t *testing.T) {
	r := testenv.Redis(t)
	r.Do(t, "SET", "greeting", "hello")
	if got := r.Do(t, "SAVE"); got != "OK" {
		t.Fatalf("SAVE: %q", got)
	}
	r.Stop(t)
	again := testenv.RedisWith(t, testenv.RedisOptions{Dir: r.Dir})
	if got := again.Do(t, "GET", "greeting"); got != "hello" {
		t.Errorf("GET greeting after restart on the saved dump: %q, want hello", got)
	}
}
