package restore

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// rehearsalRepo is production on timeline 1 (segments 1-12, segment i
// stored at i:30) and a rehearsal restore that stopped before 5:50,
// promoted to timeline 2 at 0/6000100 and kept archiving into the same
// repository (segments 6-8 of timeline 2 at 6:45, 7:45, 8:45), where
// someone also took a backup of it. extra adds more objects.
func rehearsalRepo(t *testing.T, extra func(put func(at time.Time, name string))) (*wal.Index, *wal.Timelines) {
	t.Helper()
	ctx := context.Background()
	m := storagetest.NewMemory()
	var now time.Time
	m.Now = func() time.Time { return now }
	codec := &envelope.Codec{}
	put := func(at time.Time, name string) {
		now = at
		data := name
		if strings.HasSuffix(name, ".history") {
			data = "1\t0/6000100\tbefore 2026-11-22 05:50:00+00\n\n"
		}
		if _, err := repo.New(m, codec).StoreWAL(ctx, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 12; i++ {
		put(at(i, 30), wal.SegmentFileName(1, uint64(i), seg))
	}
	put(at(6, 40), "00000002.history")
	for i := 6; i <= 8; i++ {
		put(at(i, 45), wal.SegmentFileName(2, uint64(i), seg))
	}
	if extra != nil {
		extra(put)
	}
	ix, err := wal.LoadIndex(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := wal.LoadTimelines(ctx, m, codec, ix, seg)
	if err != nil {
		t.Fatal(err)
	}
	return ix, ts
}

func bkOn(id string, tli uint32, startSeg, endSeg int, end time.Time) *catalog.Backup {
	return &catalog.Backup{ID: id, EndTime: end, WALSegmentSize: seg, Timeline: tli,
		StartWAL: wal.SegmentFileName(wal.Timeline(tli), uint64(startSeg), seg), EndWAL: wal.SegmentFileName(wal.Timeline(tli), uint64(endSeg), seg),
		EndLSN: pglogrepl.LSN(uint64(endSeg)*seg + 100).String()}
}

func TestChooseTimeline(t *testing.T) {
	backups := []*catalog.Backup{
		bkOn("20261122T010000Z", 1, 1, 2, at(2, 0)),     // production, before the rehearsal's branch
		bkOn("20261122T073000Z", 2, 7, 7, at(7, 50)),    // taken of the rehearsal, on timeline 2
		bkOn("20261122T100000Z", 1, 10, 10, at(10, 50)), // production, after the branch
	}
	timeT := func(h, m int) Target { return Target{Kind: Time, Time: at(h, m)} }
	num := func(n int) TimelineChoice { return TimelineChoice{Kind: TimelineNumber, N: wal.Timeline(n)} }
	rehearsalStillArchiving := func(put func(time.Time, string)) { put(at(13, 0), wal.SegmentFileName(2, 9, seg)) }
	tests := []struct {
		name     string
		extra    func(func(time.Time, string))
		target   Target
		id       string
		tl       TimelineChoice
		backup   string // or an error substring
		timeline wal.Timeline
		wantErr  bool
	}{
		{"latest: newest production backup", nil, Target{}, "", TimelineChoice{}, "20261122T100000Z", 1, false},
		// Before production's newest backup, the rehearsal's backup is the
		// newest, but production's WAL ends last: the older production
		// backup is chosen, on timeline 1.
		{"rehearsal backup not chosen for production", nil, timeT(9, 0), "", TimelineChoice{}, "20261122T010000Z", 1, false},
		{"timeline 2 picks the rehearsal's backup", nil, timeT(8, 0), "", num(2), "20261122T073000Z", 2, false},
		{"timeline 2 to its end", nil, Target{}, "", num(2), "20261122T073000Z", 2, false},
		{"timeline 2 from the old production backup", nil, timeT(7, 0), "", num(2), "20261122T010000Z", 2, false},
		{"timeline 1 explicitly", nil, timeT(9, 0), "", num(1), "20261122T010000Z", 1, false},
		{"current is the backup's own", nil, timeT(8, 0), "", TimelineChoice{Kind: TimelineCurrent}, "20261122T073000Z", 2, false},
		{"timeline branched before the backup", nil, Target{}, "20261122T100000Z", num(2), "timeline 2 branched from timeline 1 at 0/6000100, before the backup's end at 0/A000064", 0, true},
		{"timeline not in the archive", nil, Target{}, "", num(7), "timeline 7 is not in the archive", 0, true},
		{"past timeline 2's WAL", nil, timeT(9, 0), "", num(2), "after the last archived WAL of timeline 2", 0, true},
		// A rehearsal that is still archiving is the newest state: latest
		// follows it (and says so), --timeline 1 is the way back.
		{"rehearsal ends last", rehearsalStillArchiving, Target{}, "", TimelineChoice{}, "20261122T073000Z", 2, false},
		{"rehearsal ends last, timeline 1 asked", rehearsalStillArchiving, Target{}, "", num(1), "20261122T100000Z", 1, false},
		{"target after the archive names the fix", nil, timeT(14, 0), "", TimelineChoice{}, "SELECT pg_switch_wal()", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix, ts := rehearsalRepo(t, tt.extra)
			p, err := choose(backups, ix, ts, tt.target, tt.id, tt.tl)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.backup) {
					t.Fatalf("err = %v, want %q", err, tt.backup)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Backup.ID != tt.backup || p.Timeline != tt.timeline {
				t.Fatalf("chose %s on timeline %d, want %s on %d", p.Backup.ID, p.Timeline, tt.backup, tt.timeline)
			}
		})
	}
}

func TestDescribeTimelines(t *testing.T) {
	ix, ts := rehearsalRepo(t, nil)
	backups := []*catalog.Backup{bkOn("20261122T010000Z", 1, 1, 2, at(2, 0))}
	p, err := choose(backups, ix, ts, Target{}, "", TimelineChoice{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	p.DescribeTimelines(&b)
	want := `recovery follows timeline 1 (latest: its archived WAL ends last, at 2026-11-22T12:30:00Z)
backup 20261122T010000Z can reach 2 timelines (choose another with --timeline N):
  * timeline 1: no parent; WAL ends at 0/D000000 (00000001000000000000000C, stored 2026-11-22T12:30:00Z)
    timeline 2: branched from timeline 1 at 0/6000100 (2026-11-22T05:50:00Z) where a restore stopped: before 2026-11-22 05:50:00+00; WAL ends at 0/9000000 (000000020000000000000008, stored 2026-11-22T08:45:00Z)
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestParseTimeline(t *testing.T) {
	for in, want := range map[string]string{"": "latest", "latest": "latest", "current": "current", "3": "3", " 12 ": "12"} {
		c, err := ParseTimeline(in)
		if err != nil || c.String() != want {
			t.Errorf("ParseTimeline(%q) = %v, %v; want %s", in, c, err, want)
		}
	}
	for _, bad := range []string{"0", "-1", "two", "0x2", "4294967296"} {
		if _, err := ParseTimeline(bad); err == nil {
			t.Errorf("ParseTimeline(%q) accepted", bad)
		}
	}
}

// A damaged history file does not block the restore of other timelines;
// the plan says which timeline was left out.
func TestChooseDamagedHistory(t *testing.T) {
	ctx := context.Background()
	m := storagetest.NewMemory()
	codec := &envelope.Codec{}
	for i := 1; i <= 4; i++ {
		if _, err := repo.New(m, codec).StoreWAL(ctx, wal.SegmentFileName(1, uint64(i), seg), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := repo.New(m, codec).StoreWAL(ctx, "00000002.history", []byte("garbage\n")); err != nil {
		t.Fatal(err)
	}
	ix, err := wal.LoadIndex(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := wal.LoadTimelines(ctx, m, codec, ix, seg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := choose([]*catalog.Backup{bkOn("20261122T010000Z", 1, 1, 2, at(2, 0))}, ix, ts, Target{}, "", TimelineChoice{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Timeline != 1 || !strings.Contains(p.Warning, "timeline 2 was not considered: 00000002.history") {
		t.Fatalf("timeline %d, warning %q", p.Timeline, p.Warning)
	}
	if _, err := choose([]*catalog.Backup{bkOn("20261122T010000Z", 1, 1, 2, at(2, 0))}, ix, ts, Target{}, "", TimelineChoice{Kind: TimelineNumber, N: 2}); err == nil || !strings.Contains(err.Error(), "history unreadable") {
		t.Fatalf("--timeline 2 with a damaged history: %v", err)
	}
}
