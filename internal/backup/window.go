package backup

import (
	"sort"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/wal"
)

// Window is a span of time to any moment of which the repository can
// restore: from a backup's end (its consistency point) to the last
// contiguous archived WAL after it.
type Window struct {
	From, To time.Time
}

// Usability is what the archived WAL allows for one backup.
type Usability struct {
	Backup *catalog.Backup
	Chain  wal.Chain
	Usable bool // the WAL from the backup's start to its end is archived
}

// Check follows each backup's WAL chain in the index.
func Check(backups []*catalog.Backup, ix *wal.Index) []Usability {
	out := make([]Usability, len(backups))
	for i, b := range backups {
		c := ix.Chain(b.StartWAL, b.WALSegmentSize)
		out[i] = Usability{Backup: b, Chain: c, Usable: c.CoversWhole(b.EndWAL, b.WALSegmentSize)}
	}
	return out
}

// Windows merges the recoverable spans of usable backups, oldest first.
func Windows(us []Usability) []Window {
	var ws []Window
	for _, u := range us {
		if !u.Usable {
			continue
		}
		w := Window{From: u.Backup.EndTime, To: u.Chain.LastStored}
		if w.To.Before(w.From) {
			w.To = w.From
		}
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].From.Before(ws[j].From) })
	var merged []Window
	for _, w := range ws {
		if n := len(merged); n > 0 && !w.From.After(merged[n-1].To) {
			if w.To.After(merged[n-1].To) {
				merged[n-1].To = w.To
			}
			continue
		}
		merged = append(merged, w)
	}
	return merged
}

// Describe renders windows for messages: "restorable to any moment from A
// to B" (and "and from C to D" for holes).
func Describe(ws []Window) string {
	if len(ws) == 0 {
		return "nothing is restorable yet: no complete backup with its WAL archived"
	}
	s := "restorable to any moment"
	for i, w := range ws {
		if i > 0 {
			s += " and"
		}
		s += " from " + w.From.UTC().Format(time.RFC3339) + " to " + w.To.UTC().Format(time.RFC3339)
	}
	return s
}
