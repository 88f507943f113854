package wal

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestParseHistoryFixtures(t *testing.T) {
	tests := []struct {
		file string
		want string // "tli switch kind|..."
	}{
		{"00000002.history", "1 0/5000060 failover"},
		{"00000003.history", "1 0/5000060 failover|2 0/9000100 restore"},
		{"00000004.history", "1 0/7000028 restore"},
		{"00000005.history", "1 0/5000060 failover|2 0/9000100 restore|3 0/A0000A0 restore"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			h, err := ParseHistory(data)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range h {
				got = append(got, fmt.Sprintf("%d %s %s", e.Timeline, e.Switch, KindOf(e.Reason)))
			}
			if s := strings.Join(got, "|"); s != tt.want {
				t.Fatalf("got %q, want %q", s, tt.want)
			}
		})
	}
}

func TestParseHistoryRejects(t *testing.T) {
	for _, bad := range []string{
		"x\t0/1\tno recovery target specified\n",
		"1\tnot-an-lsn\treason\n",
		"2\t0/5000000\tr\n1\t0/6000000\tr\n", // timelines must increase
		"1\t0/6000000\tr\n2\t0/5000000\tr\n", // switch points must not go back
	} {
		if _, err := ParseHistory([]byte(bad)); err == nil {
			t.Errorf("ParseHistory(%q) accepted", bad)
		}
	}
}

func TestReasonTime(t *testing.T) {
	for reason, want := range map[string]string{
		"before 2026-11-22 14:01:00.123456+00": "2026-11-22T14:01:00.123456Z",
		"after 2026-11-22 19:31:00+05:30":      "2026-11-22T14:01:00Z",
		"before 2026-11-22 06:01:00-08":        "2026-11-22T14:01:00Z",
	} {
		got, ok := reasonTime(reason)
		if !ok || got.Format(time.RFC3339Nano) != want {
			t.Errorf("reasonTime(%q) = %v, %v; want %s", reason, got, ok, want)
		}
	}
	for _, reason := range []string{"no recovery target specified", "before transaction 1234", `at restore point "x"`} {
		if _, ok := reasonTime(reason); ok {
			t.Errorf("reasonTime(%q) found a time", reason)
		}
	}
}

const tlSeg = 16 << 20

var tlDay = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// rehearsalArchive is production on timeline 1 (segments 1-12, segment i
// stored at i:00) with two rehearsals that archived into the same
// repository: timeline 2 branched from 1 at 0/6000100 (stored its history
// at 6:10, segments 6-7 at 6:20), timeline 3 from 1 at 0/9000100 (history
// at 9:10, segment 9 at 9:20). Timeline 4 is a failover of timeline 2 at
// 0/7000200, history only, at 7:40.
func rehearsalArchive(t *testing.T) (*Index, *Timelines) {
	t.Helper()
	ctx := context.Background()
	m := storagetest.NewMemory()
	var now time.Time
	m.Now = func() time.Time { return now }
	codec := &envelope.Codec{}
	put := func(at time.Duration, name string, data string) {
		now = tlDay.Add(at)
		if _, err := storeWAL(ctx, m, codec, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 12; i++ {
		put(time.Duration(i)*time.Hour, SegmentFileName(1, uint64(i), tlSeg), "tl1-"+fmt.Sprint(i))
	}
	put(6*time.Hour+10*time.Minute, "00000002.history", "1\t0/6000100\tbefore 2026-11-22 05:50:00+00\n\n")
	put(6*time.Hour+20*time.Minute, SegmentFileName(2, 6, tlSeg), "tl2-6")
	put(6*time.Hour+20*time.Minute, SegmentFileName(2, 7, tlSeg), "tl2-7")
	put(9*time.Hour+10*time.Minute, "00000003.history", "1\t0/9000100\tat restore point \"drill\"\n")
	put(9*time.Hour+20*time.Minute, SegmentFileName(3, 9, tlSeg), "tl3-9")
	put(7*time.Hour+40*time.Minute, "00000004.history", "1\t0/6000100\tbefore 2026-11-22 05:50:00+00\n\n2\t0/7000200\tno recovery target specified\n")
	ix, err := LoadIndex(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := LoadTimelines(ctx, m, codec, ix, tlSeg)
	if err != nil {
		t.Fatal(err)
	}
	return ix, ts
}

func TestLoadTimelines(t *testing.T) {
	_, ts := rehearsalArchive(t)
	var got []string
	for _, tl := range ts.All() {
		got = append(got, fmt.Sprintf("%d parent=%d at=%s kind=%s branch=%s last=%s end=%s ends=%s", tl.Timeline, tl.Parent, tl.BranchLSN, tl.Kind,
			tl.BranchTime.Format("15:04"), tl.LastSegment, tl.EndLSN, tl.EndTime.Format("15:04")))
	}
	want := []string{
		"1 parent=0 at=0/0 kind=none branch=00:00 last=00000001000000000000000C end=0/D000000 ends=12:00",
		"2 parent=1 at=0/6000100 kind=restore branch=05:50 last=000000020000000000000007 end=0/8000000 ends=06:20",
		"3 parent=1 at=0/9000100 kind=restore branch=09:10 last=000000030000000000000009 end=0/A000000 ends=09:20",
		"4 parent=2 at=0/7000200 kind=failover branch=07:40 last= end=0/0 ends=07:40",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("timelines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadTimelinesWithoutKey(t *testing.T) {
	ctx := context.Background()
	m := storagetest.NewMemory()
	if _, err := storeWAL(ctx, m, &envelope.Codec{}, "00000002.history", []byte("1\t0/6000100\tno recovery target specified\n")); err != nil {
		t.Fatal(err)
	}
	ix, err := LoadIndex(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := LoadTimelines(ctx, m, nil, ix, 0)
	if err != nil {
		t.Fatal(err)
	}
	tl, ok := ts.Get(2)
	if !ok || tl.Kind != BranchUnknown || tl.HistoryKnown {
		t.Fatalf("unread history: %+v", tl)
	}
	if err := ts.Reachable(1, 0, 2); err == nil {
		t.Fatal("an unread history counts as reachable")
	}
}

func TestCandidatesAndLatest(t *testing.T) {
	_, ts := rehearsalArchive(t)
	lsn := func(s string) pglogrepl.LSN { l, _ := pglogrepl.ParseLSN(s); return l }
	tests := []struct {
		name       string
		from       Timeline
		end        string
		candidates string
		latest     Timeline
	}{
		{"backup before both rehearsals", 1, "0/2000100", "[1 2 3 4]", 1},
		{"backup at a branch point", 1, "0/6000100", "[1 2 3 4]", 1},
		{"backup after the first rehearsal branched", 1, "0/6000200", "[1 3]", 1},
		{"backup after both", 1, "0/B000000", "[1]", 1},
		{"backup on a rehearsal timeline", 2, "0/6800000", "[2 4]", 4},
		{"backup on timeline 2 after its failover", 2, "0/7800000", "[2]", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.Candidates(tt.from, lsn(tt.end))
			if got := fmt.Sprint(c); got != tt.candidates {
				t.Fatalf("candidates %s, want %s", got, tt.candidates)
			}
			if got := ts.Latest(c); got != tt.latest {
				t.Fatalf("latest %d, want %d", got, tt.latest)
			}
		})
	}
	tie := NewTimelines(
		TimelineInfo{Timeline: 1, Kind: BranchNone, EndTime: tlDay},
		TimelineInfo{Timeline: 2, Kind: BranchRestore, EndTime: tlDay},
		TimelineInfo{Timeline: 3, Kind: BranchFailover, EndTime: tlDay},
		TimelineInfo{Timeline: 4, Kind: BranchRestore, EndTime: tlDay.Add(-time.Second)},
	)
	for tlis, want := range map[string]Timeline{"1 2": 1, "2 1": 1, "1 2 3": 3, "2 4": 2, "4": 4} {
		var in []Timeline
		for _, f := range strings.Fields(tlis) {
			var n Timeline
			if _, err := fmt.Sscan(f, &n); err != nil {
				t.Fatal(err)
			}
			in = append(in, n)
		}
		if got := tie.Latest(in); got != want {
			t.Errorf("Latest(%s) on a tie = %d, want %d", tlis, got, want)
		}
	}
	for to, want := range map[Timeline]string{
		2: "timeline 2 branched from timeline 1 at 0/6000100, before the backup's end at 0/8000000",
		4: "timeline 4 branched from timeline 1 at 0/6000100, before the backup's end",
		9: "timeline 9 is not in the archive",
	} {
		if err := ts.Reachable(1, lsn("0/8000000"), to); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Reachable(1, 0/8000000, %d) = %v, want %q", to, err, want)
		}
	}
	if err := ts.Reachable(3, 0, 2); err == nil || !strings.Contains(err.Error(), "does not descend from timeline 3 (its history: 1 -> 2)") {
		t.Errorf("Reachable(3, 0, 2) = %v", err)
	}
}

func TestChainOnFollowsTheChosenTimeline(t *testing.T) {
	ix, ts := rehearsalArchive(t)
	start := SegmentFileName(1, 2, tlSeg)
	tests := []struct {
		to        Timeline
		last      string
		missing   string
		moreAfter bool
	}{
		// Production: timeline 1 to its end, never into a rehearsal's
		// segments, and no gap because of them.
		{1, "00000001000000000000000C", "00000001000000000000000D", false},
		// Rehearsal 2: timeline 1 to segment 5, then its own 6 and 7.
		{2, "000000020000000000000007", "000000020000000000000008", false},
		// Rehearsal 3: timeline 1 up to 8, its own 9.
		{3, "000000030000000000000009", "00000003000000000000000A", false},
		// Failover 4 of 2: 2's WAL up to its switch segment 7 (4 has no
		// copy of it: recovery reads 2's), then nothing of its own yet.
		{4, "000000020000000000000007", "000000040000000000000008", false},
	}
	for _, tt := range tests {
		p, err := ts.Path(1, tt.to)
		if err != nil {
			t.Fatal(err)
		}
		c := ix.ChainOn(start, tlSeg, p)
		if c.Last != tt.last || c.Missing != tt.missing || c.MoreAfter != tt.moreAfter {
			t.Errorf("timeline %d: chain last %s missing %s more %v; want %s %s %v", tt.to, c.Last, c.Missing, c.MoreAfter, tt.last, tt.missing, tt.moreAfter)
		}
	}
	// A gap on the chosen timeline is a gap, one on another is not.
	p, _ := ts.Path(1, 1)
	hidden := SegmentFileName(1, 10, tlSeg)
	e := ix.files[hidden]
	delete(ix.files, hidden)
	defer func() { ix.files[hidden] = e }()
	if c := ix.ChainOn(start, tlSeg, p); c.Missing != hidden || !c.MoreAfter {
		t.Errorf("gap on timeline 1: %+v", c)
	}
	p3, _ := ts.Path(1, 3)
	if c := ix.ChainOn(start, tlSeg, p3); c.Last != "000000030000000000000009" || c.MoreAfter {
		t.Errorf("timeline 3 past a gap of timeline 1 after its branch: %+v", c)
	}
}

// storeWAL stores a WAL file the way wal-push does (sealed, under its
// catalog key); the repository layer's StoreWAL sits above this package.
func storeWAL(ctx context.Context, st storage.Storage, codec *envelope.Codec, name string, data []byte) (string, error) {
	var buf bytes.Buffer
	s, err := codec.Seal(&buf)
	if err != nil {
		return "", err
	}
	if _, err := s.Write(data); err != nil {
		return "", err
	}
	if err := s.Close(); err != nil {
		return "", err
	}
	key, err := catalog.WALKey(name, s.Sum(), codec.Encrypt)
	if err != nil {
		return "", err
	}
	return key, st.Create(ctx, key, &buf)
}
