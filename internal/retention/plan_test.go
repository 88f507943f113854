package retention

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// fixedNow is the end of the synthetic year.
var fixedNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// syntheticYear is a year of items ending at fixedNow:
//   - a backup every day at 01:00 UTC, on timeline 1 until 2026-06-15,
//     when a restore switched to timeline 2 (that day has a second backup
//     at 13:00 on the new timeline); the newest backup has
//     an id that sorts first by name (like wal-g's segment-named backups
//     after pg_upgrade); one pinned on 2026-02-14;
//   - dumps of "app" every day at 02:00, and of "shop" every third day at
//     23:30 (late enough that a zone east of UTC puts it on the next day);
//   - snapshots of set "uploads" every day at 03:00, and of "secrets"
//     every Monday at 04:00, one pinned.
func syntheticYear() []Item {
	var items []Item
	start := fixedNow.AddDate(-1, 0, 0)
	day := 0
	for d := start; d.Before(fixedNow); d = d.AddDate(0, 0, 1) {
		date := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
		tl := uint32(1)
		if !date.Before(time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)) {
			tl = 2
		}
		bt := date.Add(time.Hour)
		b := Item{Kind: KindBackup, ID: id(bt), Time: bt, Timeline: tl}
		if tl == 2 && date.Equal(time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)) {
			b.Timeline = 1
		}
		if date.Equal(time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC)) {
			b.Pinned = true
		}
		if date.Equal(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)) {
			b.ID = "000000010000000000000002" // sorts before every other id
		}
		items = append(items, b)
		if date.Equal(time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)) {
			t := date.Add(13 * time.Hour)
			items = append(items, Item{Kind: KindBackup, ID: id(t), Time: t, Timeline: 2})
		}
		at := date.Add(2 * time.Hour)
		items = append(items, Item{Kind: KindDump, Group: "app", ID: id(at), Time: at})
		if day%3 == 0 {
			st := date.Add(23*time.Hour + 30*time.Minute)
			items = append(items, Item{Kind: KindDump, Group: "shop", ID: id(st), Time: st})
		}
		ut := date.Add(3 * time.Hour)
		items = append(items, Item{Kind: KindSnapshot, Group: "uploads", ID: id(ut), Time: ut})
		if date.Weekday() == time.Monday {
			kt := date.Add(4 * time.Hour)
			items = append(items, Item{Kind: KindSnapshot, Group: "secrets", ID: id(kt), Time: kt,
				Pinned: date.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))})
		}
		day++
	}
	return items
}

func id(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// format writes a plan as one line per item, then the counts per group.
func format(ds []Decision, loc *time.Location) []byte {
	var buf bytes.Buffer
	type key struct{ kind, group string }
	keep, del := map[key]int{}, map[key]int{}
	var order []key
	for _, d := range ds {
		k := key{d.Item.Kind, d.Item.Group}
		if keep[k]+del[k] == 0 {
			order = append(order, k)
		}
		verdict := "delete"
		if d.Keep {
			verdict = "keep   " + strings.Join(d.Reasons, ",")
			keep[k]++
		} else {
			del[k]++
		}
		group := d.Item.Group
		if group == "" {
			group = "-"
		}
		fmt.Fprintf(&buf, "%-8s %-7s %-16s %s tl%d %s\n", d.Item.Kind, group, d.Item.ID,
			d.Item.Time.In(loc).Format("2006-01-02T15:04 Mon"), d.Item.Timeline, verdict)
	}
	for _, k := range order {
		fmt.Fprintf(&buf, "# %s %s: keep %d, delete %d\n", k.kind, k.group, keep[k], del[k])
	}
	return buf.Bytes()
}

func TestPlanGolden(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("load zone: %v", err)
	}
	for _, tc := range []struct {
		name string
		p    Policy
		loc  *time.Location
	}{
		{"keep-last-3", Policy{KeepLast: 3}, time.UTC},
		{"empty", Policy{}, time.UTC},
		{"tiers", Policy{KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 3}, time.UTC},
		{"tiers-berlin", Policy{KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 3}, berlin},
		{"within-30d-last-2", Policy{KeepWithin: 30 * 24 * time.Hour, KeepLast: 2}, time.UTC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := format(Plan(syntheticYear(), tc.p, fixedNow, tc.loc), tc.loc)
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden: %v (rerun with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("plan differs from %s (rerun with -update, review the diff)", golden)
			}
		})
	}
}

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// kept returns the ids Plan keeps, with their reasons, oldest first.
func kept(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.Item.ID+":"+strings.Join(d.Reasons, ","))
		}
	}
	return out
}

func TestPlanRules(t *testing.T) {
	b := func(id, at string) Item { return Item{Kind: KindBackup, ID: id, Time: utc(at), Timeline: 1} }
	dmp := func(group, id, at string) Item { return Item{Kind: KindDump, Group: group, ID: id, Time: utc(at)} }
	now := utc("2026-12-07T12:00") // a Monday
	for _, tc := range []struct {
		name  string
		items []Item
		p     Policy
		want  []string
	}{
		{"daily keeps the newest of a day", []Item{b("a", "2026-12-06T01:00"), b("b", "2026-12-06T13:00"), b("c", "2026-12-05T01:00")},
			Policy{KeepDaily: 1}, []string{"b:daily,newest"}},
		{"daily counts days that have one", []Item{b("a", "2026-11-01T01:00"), b("b", "2026-12-01T01:00"), b("c", "2026-12-06T01:00")},
			Policy{KeepDaily: 2}, []string{"b:daily", "c:daily,newest"}},
		{"weeks run Monday to Sunday", []Item{b("sun", "2026-12-06T23:00"), b("sat", "2026-12-05T01:00"), b("mon", "2026-12-07T01:00"), b("prevmon", "2026-11-30T00:30")},
			Policy{KeepWeekly: 2}, []string{"sun:weekly", "mon:weekly,newest"}},
		{"order by time, not id", []Item{b("z-first", "2026-12-01T01:00"), b("a-second", "2026-12-02T01:00")},
			Policy{KeepLast: 1}, []string{"a-second:last,newest"}},
		{"equal times order by id", []Item{b("b", "2026-12-01T01:00"), b("a", "2026-12-01T01:00")},
			Policy{KeepLast: 1}, []string{"b:last,newest"}},
		{"newest backup kept by any policy", []Item{b("a", "2026-01-01T01:00"), b("b", "2026-02-01T01:00")},
			Policy{KeepWithin: time.Hour}, []string{"b:newest"}},
		{"no newest floor for dumps", []Item{dmp("app", "a", "2026-01-01T01:00")},
			Policy{KeepWithin: time.Hour}, nil},
		{"within is relative to now", []Item{b("a", "2026-12-07T09:00"), b("b", "2026-12-07T10:30")},
			Policy{KeepWithin: 2 * time.Hour}, []string{"b:within,newest"}},
		{"pinned kept and still counted", []Item{{Kind: KindBackup, ID: "p", Time: utc("2026-12-06T01:00"), Pinned: true}, b("q", "2026-12-05T01:00"), b("r", "2026-12-07T01:00")},
			Policy{KeepLast: 2}, []string{"p:last,pinned", "r:last,newest"}},
		{"groups are separate", []Item{dmp("app", "a1", "2026-12-01T01:00"), dmp("app", "a2", "2026-12-02T01:00"), dmp("shop", "s1", "2026-11-01T01:00")},
			Policy{KeepLast: 1}, []string{"a2:last", "s1:last"}},
		{"empty policy keeps all", []Item{dmp("app", "a1", "2026-12-01T01:00"), b("x", "2026-12-01T01:00")},
			Policy{}, []string{"x:all,newest", "a1:all"}},
		{"years", []Item{b("y24", "2024-06-01T00:00"), b("y25a", "2025-01-01T00:00"), b("y25b", "2025-12-31T23:59"), b("y26", "2026-03-01T00:00")},
			Policy{KeepYearly: 2}, []string{"y25b:yearly", "y26:yearly,newest"}},
		{"months", []Item{b("n1", "2026-11-01T00:00"), b("n30", "2026-11-30T23:59"), b("o", "2026-10-15T00:00"), b("s", "2026-09-15T00:00")},
			Policy{KeepMonthly: 2}, []string{"o:monthly", "n30:monthly,newest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kept(Plan(tc.items, tc.p, now, time.UTC))
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("kept %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPlanZone(t *testing.T) {
	// 23:30 UTC on Sunday 6 December is 00:30 on Monday in Berlin: a new
	// day and a new week there.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("load zone: %v", err)
	}
	items := []Item{
		{Kind: KindDump, Group: "app", ID: "a", Time: utc("2026-12-06T12:00")},
		{Kind: KindDump, Group: "app", ID: "b", Time: utc("2026-12-06T23:30")},
	}
	now := utc("2026-12-07T12:00")
	if got := kept(Plan(items, Policy{KeepWeekly: 2}, now, time.UTC)); strings.Join(got, " ") != "b:weekly" {
		t.Errorf("UTC: kept %q, want b only", got)
	}
	if got := kept(Plan(items, Policy{KeepWeekly: 2}, now, berlin)); strings.Join(got, " ") != "a:weekly b:weekly" {
		t.Errorf("Berlin: kept %q, want both", got)
	}
}
