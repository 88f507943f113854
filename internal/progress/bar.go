package progress

import (
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

var _ Meter = (*Bar)(nil)

// Bar is a Meter drawn as one line on a terminal
// (github.com/schollz/progressbar): the label, a bar with the share done,
// bytes done of the total, the rate and the time left; with no total yet, a
// spinner with the bytes and the rate. Done clears the line, so what the
// command prints next starts on a clean one. Write it only to a terminal:
// it redraws its line with carriage returns.
type Bar struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	total int64 // 0: unknown
	done  int64
	ended bool
}

// NewBar starts a bar on w; total is the bytes expected (0: unknown).
func NewBar(w io.Writer, label string, total int64) *Bar {
	size := int64(-1) // the library's "unknown"
	if total > 0 {
		size = total
	}
	b := &Bar{total: max(total, 0)}
	b.bar = progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return b
}

// SetTotal sets the bytes expected; 0 shows the spinner. A total below
// what is done already grows to it.
func (b *Bar) SetTotal(bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended || bytes == b.total {
		return
	}
	b.total = max(bytes, 0)
	if b.total == 0 {
		b.bar.ChangeMax64(-1)
		return
	}
	b.total = max(b.total, b.done)
	b.bar.ChangeMax64(b.total)
}

// Add counts bytes moved. Past the total (an estimate, such as the
// server's for a base backup), the total grows with them.
func (b *Bar) Add(bytes int64) {
	if bytes <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.done += bytes
	if b.total > 0 && b.done > b.total {
		b.total = b.done
		b.bar.ChangeMax64(b.total)
	}
	_ = b.bar.Add64(bytes) // its only errors are about its own options and counts, kept valid here
}

// Done clears the line; further calls are ignored.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.ended = true
	_ = b.bar.Finish() // ends the spinner's ticker too
}

// Reader returns r counting what is read from it on m; r itself if m is
// nil.
func Reader(m Meter, r io.Reader) io.Reader {
	if m == nil {
		return r
	}
	return reader{m, r}
}

type reader struct {
	m Meter
	r io.Reader
}

func (r reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.Add(int64(n))
	return n, err
}
