package testenv

import (
	"testing"
	"time"
)

// Eventually calls cond until it reports done, polling with a short
// backoff (10ms, doubling up to 250ms), and fails the test when timeout
// passes first. cond runs on the test's goroutine, so it may call t.Fatal;
// while not done it returns what is still awaited, as the failure message
// would say it, e.g. "000000010000000000000003 not archived (last archived
// ...)". The test then fails with "waited <timeout>: " and that message of
// the last call.
//
//	testenv.Eventually(t, time.Minute, func() (bool, string) {
//		n, err := c.QueryInt(ctx, `SELECT failed_count FROM pg_stat_archiver`)
//		return n > 0, fmt.Sprintf("archive_command never failed (%v)", err)
//	})
func Eventually(t testing.TB, timeout time.Duration, cond func() (done bool, awaited string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		done, awaited := cond()
		if done {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("waited %s: %s", timeout, awaited)
			return // a TB whose Fatalf returns
		}
		time.Sleep(min(wait, left))
		wait = min(2*wait, 250*time.Millisecond)
	}
}
