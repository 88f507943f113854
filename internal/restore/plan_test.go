package restore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

const seg = 16 << 20

var day = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time {
	return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// archive stores segments 1..n of timeline 1, segment i at i:30, except
// those in skip.
func archive(t *testing.T, n int, skip ...int) *wal.Index {
	t.Helper()
	m := storagetest.NewMemory()
	var now time.Time
	m.Now = func() time.Time { return now }
	sum := strings.Repeat("ab", 32)
next:
	for i := 1; i <= n; i++ {
		for _, s := range skip {
			if s == i {
				continue next
			}
		}
		now = at(i, 30)
		key, _ := catalog.WALKey(wal.SegmentFileName(1, uint64(i), seg), sum, true)
		if err := m.Put(context.Background(), key, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	ix, err := wal.LoadIndex(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func bk(id string, startSeg, endSeg int, end time.Time) *catalog.Backup {
	return &catalog.Backup{ID: id, EndTime: end, WALSegmentSize: seg, Timeline: 1,
		StartWAL: wal.SegmentFileName(1, uint64(startSeg), seg), EndWAL: wal.SegmentFileName(1, uint64(endSeg), seg),
		EndLSN: pglogrepl.LSN(uint64(endSeg)*seg + 100).String()}
}

func TestChoose(t *testing.T) {
	backups := []*catalog.Backup{bk("20261122T010000Z", 1, 2, at(2, 0)), bk("20261122T040000Z", 4, 5, at(5, 0))}
	timeT := func(h, m int) Target { return Target{Kind: Time, Time: at(h, m)} }
	tests := []struct {
		name    string
		ix      *wal.Index
		target  Target
		id      string
		want    string // backup id, or an error substring
		wantErr bool
	}{
		{"time between backups", archive(t, 8), timeT(3, 0), "", "20261122T010000Z", false},
		{"time after newest backup", archive(t, 8), timeT(6, 0), "", "20261122T040000Z", false},
		{"time exactly at backup end", archive(t, 8), timeT(5, 0), "", "20261122T040000Z", false},
		{"time before first backup", archive(t, 8), timeT(1, 0), "", "before the end of the first backup", true},
		{"time after archive", archive(t, 8), timeT(9, 0), "", "after the last archived WAL", true},
		{"latest", archive(t, 8), Target{Kind: Latest}, "", "20261122T040000Z", false},
		{"latest with gap", archive(t, 8, 6), Target{Kind: Latest}, "", "segment 000000010000000000000006 is missing", true},
		{"time beyond gap", archive(t, 8, 6), timeT(7, 0), "", "segment 000000010000000000000006 is missing", true},
		{"time before gap", archive(t, 8, 6), timeT(5, 10), "", "20261122T040000Z", false},
		{"newest backup lacks its WAL", archive(t, 8, 5), timeT(6, 0), "", "segment 000000010000000000000005 is missing", true},
		{"older backup still fine", archive(t, 8, 5), timeT(3, 0), "", "20261122T010000Z", false},
		{"named backup", archive(t, 8), Target{Kind: Latest}, "20261122T010000Z", "20261122T010000Z", false},
		{"named backup after target", archive(t, 8), timeT(3, 0), "20261122T040000Z", "ended after target", true},
		{"unknown backup", archive(t, 8), Target{Kind: Latest}, "20200101T000000Z", "no such complete backup", true},
		{"lsn", archive(t, 8), Target{Kind: LSN, LSN: pglogrepl.LSN(3*seg + 5)}, "", "20261122T010000Z", false},
		{"lsn past archive", archive(t, 8), Target{Kind: LSN, LSN: pglogrepl.LSN(20 * seg)}, "", "after the last archived WAL", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := choose(backups, tt.ix, noHistories(t, tt.ix), tt.target, tt.id, TimelineChoice{})
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Backup.ID != tt.want {
				t.Fatalf("chose %s, want %s", p.Backup.ID, tt.want)
			}
		})
	}
	ix1 := archive(t, 1)
	if _, err := choose(nil, ix1, noHistories(t, ix1), Target{Kind: Latest}, "", TimelineChoice{}); err == nil || !strings.Contains(err.Error(), "pitr backup") {
		t.Fatalf("no backups: %v", err)
	}
}

// noHistories is the timelines of an index without history files.
func noHistories(t *testing.T, ix *wal.Index) *wal.Timelines {
	t.Helper()
	ts, err := wal.LoadTimelines(context.Background(), nil, nil, ix, seg)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
