package main

import (
	"io"
	"sync/atomic"

	"github.com/pitr-dev/pitr/internal/progress"
)

// newMeter returns a progress bar on stderr for a long command (backup,
// restore, files, copy, verify), or nil, which shows nothing: the bar is
// for a person watching a terminal, so there is none when stderr is not a
// terminal (a pipe, a log file, a test's buffer) or when logs are JSON
// (log_format json, or auto off a terminal). A command printing --json
// output does not ask for one. total is the bytes expected, 0 if not
// known yet (the job may set it). The caller ends it with progress.Done.
func newMeter(e *env, label string, total int64) progress.Meter {
	if !isTerminal(e.stderr) || e.cfg.LogFormat == "json" {
		return nil
	}
	b := &meter{Bar: progress.NewBar(e.stderr, label, total)}
	barsDrawn.Add(1)
	return b
}

// meter is a Bar that tells the console log (barLog) while it is drawn.
type meter struct {
	*progress.Bar
	ended atomic.Bool
}

func (m *meter) Done() {
	if m.ended.CompareAndSwap(false, true) {
		m.Bar.Done()
		barsDrawn.Add(-1)
	}
}

// barsDrawn counts the bars on stderr now (one terminal per process).
var barsDrawn atomic.Int32

// barLog is the console log's writer: while a bar is drawn on the same
// terminal, each log line first erases the bar's line (the bar draws
// itself again below it on its next update), so a line never starts with
// the bar's leftovers.
type barLog struct{ w io.Writer }

func (b barLog) Write(p []byte) (int, error) {
	if barsDrawn.Load() > 0 {
		if _, err := io.WriteString(b.w, "\r\x1b[K"); err != nil {
			return 0, err
		}
	}
	return b.w.Write(p)
}
