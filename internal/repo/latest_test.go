package repo

import (
	"fmt"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// TestLatestWindowsIgnoreRehearsal: a rehearsal restored from the backup
// archives a few segments on timeline 2 and stops; production goes on on
// timeline 1. The windows follow timeline 1 to its end, as restore does,
// and once timeline 2 ends later (a promoted standby, say) they follow it.
func TestLatestWindowsIgnoreRehearsal(t *testing.T) {
	ctx := t.Context()
	m := storagetest.NewMemory()
	day := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	var now time.Time
	m.Now = func() time.Time { return now }
	r := New(m, &envelope.Codec{})
	put := func(at time.Duration, name, data string) {
		t.Helper()
		now = day.Add(at)
		if _, err := r.StoreWAL(ctx, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 10; i++ {
		put(time.Duration(i)*time.Hour, wal.SegmentFileName(1, uint64(i), seg), fmt.Sprint("tl1-", i))
	}
	// The rehearsal branched at 0/5000100 (in segment 5) and archived 5 and 6.
	put(5*time.Hour+30*time.Minute, "00000002.history", "1\t0/5000100\tbefore 2026-11-22 04:30:00+00\n")
	put(5*time.Hour+40*time.Minute, wal.SegmentFileName(2, 5, seg), "tl2-5")
	put(5*time.Hour+50*time.Minute, wal.SegmentFileName(2, 6, seg), "tl2-6")
	b := &catalog.Backup{ID: "20261122T020000Z", Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg,
		StartLSN: "0/2000028", EndLSN: "0/2000100", EndTime: day.Add(2 * time.Hour),
		StartWAL: wal.SegmentFileName(1, 2, seg), EndWAL: wal.SegmentFileName(1, 2, seg)}

	windows := func() ([]Window, wal.Timeline) {
		t.Helper()
		ix, err := r.WALIndex(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := r.Timelines(ctx, ix, seg)
		if err != nil {
			t.Fatal(err)
		}
		return LatestWindows(Check([]*catalog.Backup{b}, ix), ix, ts)
	}
	ws, tli := windows()
	if tli != 1 || len(ws) != 1 || !ws[0].To.Equal(day.Add(10*time.Hour)) {
		t.Fatalf("with a rehearsal on timeline 2: timeline %d, windows %v; want timeline 1 to 10:00", tli, ws)
	}
	for i := 7; i <= 12; i++ {
		put(time.Duration(i)*time.Hour+30*time.Minute, wal.SegmentFileName(2, uint64(i), seg), fmt.Sprint("tl2-", i))
	}
	ws, tli = windows()
	if tli != 2 || len(ws) != 1 || !ws[0].To.Equal(day.Add(12*time.Hour+30*time.Minute)) {
		t.Fatalf("timeline 2 ending last: timeline %d, windows %v; want timeline 2 to 12:30", tli, ws)
	}
}
