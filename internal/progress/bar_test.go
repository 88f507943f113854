package progress

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the bar's spinner goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBar: the bar shows its label, bytes and total; a total below what
// is done grows; Done clears the line once, and later calls draw nothing.
func TestBar(t *testing.T) {
	for _, tt := range []struct {
		name  string
		total int64
	}{{"known total", 3 << 20}, {"unknown total", 0}} {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			b := NewBar(&out, "restore", tt.total)
			var wg sync.WaitGroup
			for range 4 { // Meter methods may be called from several goroutines
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 256 {
						b.Add(1 << 12)
					}
				}()
			}
			wg.Wait()
			if b.done != 4<<20 || (tt.total > 0 && b.total != 4<<20) {
				t.Errorf("done %d, total %d: want 4 MiB of both (a total below what is done grows)", b.done, b.total)
			}
			b.SetTotal(1 << 20)
			if b.total != b.done {
				t.Errorf("SetTotal below done: total %d, done %d", b.total, b.done)
			}
			b.Done()
			drawn := out.String()
			if !strings.Contains(drawn, "restore") || !strings.Contains(drawn, "iB,") { // "4.0 KiB, 7.6 GiB/s": bytes done and the rate
				t.Errorf("bar output lacks the label or the bytes: %q", drawn)
			}
			if !strings.HasSuffix(drawn, "\r") {
				t.Errorf("Done left the line drawn: %q", drawn[max(0, len(drawn)-80):])
			}
			b.Done()
			b.Add(1 << 20)
			b.SetTotal(9 << 20)
			if out.String() != drawn {
				t.Error("the bar drew after Done")
			}
		})
	}
}

// TestNilMeter: the helpers and Reader do nothing with a nil Meter.
func TestNilMeter(t *testing.T) {
	SetTotal(nil, 5)
	Add(nil, 5)
	Done(nil)
	r := strings.NewReader("abc")
	if Reader(nil, r) != io.Reader(r) {
		t.Error("Reader(nil, r) is not r")
	}
}

type counter struct{ total, added int64 }

func (c *counter) SetTotal(n int64) { c.total = n }
func (c *counter) Add(n int64)      { c.added += n }
func (c *counter) Done()            {}

func TestReader(t *testing.T) {
	var c counter
	n, err := io.Copy(io.Discard, Reader(&c, strings.NewReader(strings.Repeat("x", 100000))))
	if err != nil || n != 100000 || c.added != n {
		t.Errorf("copied %d (%v), counted %d", n, err, c.added)
	}
}
