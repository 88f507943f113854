package testenv

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fatalTB records Fatalf and ends the goroutine as testing's does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls Eventually on its own goroutine, as a test body.
func (f *fatalTB) run(timeout time.Duration, cond func() (bool, string)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(f, timeout, cond)
	}()
	<-done
}

func TestEventuallyReturnsOnceDone(t *testing.T) {
	f := &fatalTB{TB: t}
	calls := 0
	f.run(time.Minute, func() (bool, string) {
		calls++
		return calls == 3, fmt.Sprintf("%d calls", calls)
	})
	if f.msg != "" || calls != 3 {
		t.Errorf("Eventually failed with %q after %d calls, want success at the third", f.msg, calls)
	}
}

// A cond that never holds fails the test with its last message and the
// timeout, once cond has been tried more than once.
func TestEventuallyTimesOut(t *testing.T) {
	f := &fatalTB{TB: t}
	calls := 0
	f.run(50*time.Millisecond, func() (bool, string) {
		calls++
		return false, fmt.Sprintf("segment not archived after %d polls", calls)
	})
	want := fmt.Sprintf("waited 50ms: segment not archived after %d polls", calls)
	if f.msg != want || calls < 2 {
		t.Errorf("Eventually failed with %q after %d calls, want %q", f.msg, calls, want)
	}
}

// cond may end the test itself, as a t.Fatal inside it does.
func TestEventuallyCondFails(t *testing.T) {
	f := &fatalTB{TB: t}
	f.run(time.Minute, func() (bool, string) {
		f.Fatalf("query failed")
		return true, ""
	})
	if f.msg != "query failed" {
		t.Errorf("msg = %q", f.msg)
	}
}
