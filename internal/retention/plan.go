package retention

import (
	"sort"
	"time"
)

// Kinds of items a policy applies to.
const (
	KindBackup   = "backup"
	KindDump     = "dump"
	KindSnapshot = "snapshot"
)

// Reasons a Decision lists for keeping an item.
const (
	ReasonLast    = "last"
	ReasonDaily   = "daily"
	ReasonWeekly  = "weekly"
	ReasonMonthly = "monthly"
	ReasonYearly  = "yearly"
	ReasonWithin  = "within"
	ReasonPinned  = "pinned"
	ReasonNewest  = "newest" // the newest backup, kept whatever the policy
	ReasonAll     = "all"    // the policy is empty: everything is kept
)

// Policy says which items of one kind and group to keep, with restic's
// semantics ("restic forget"): an item any rule keeps is kept. A zero
// Policy keeps everything.
type Policy struct {
	KeepLast    int           // the newest N
	KeepDaily   int           // the newest item of each of the last N days that have one
	KeepWeekly  int           // ... of each of the last N ISO weeks (Monday to Sunday)
	KeepMonthly int           // ... of each of the last N calendar months
	KeepYearly  int           // ... of each of the last N calendar years
	KeepWithin  time.Duration // every item newer than now-KeepWithin
}

// Empty says whether p keeps everything.
func (p Policy) Empty() bool { return p == Policy{} }

// Item is one complete entry of the repository, as Plan sees it.
type Item struct {
	Kind     string    `json:"kind"`               // KindBackup, KindDump or KindSnapshot
	Group    string    `json:"group,omitempty"`    // the database of a dump, the set of a snapshot; "" for backups
	ID       string    `json:"id"`                 // the entry's id
	Time     time.Time `json:"time"`               // recorded start time; Plan orders by it, then by ID
	Timeline uint32    `json:"timeline,omitempty"` // a backup's timeline; 0 for others
	Pinned   bool      `json:"pinned,omitempty"`   // pitr pin: kept whatever the policy
}

// Decision says whether to keep an item, and why.
type Decision struct {
	Item    Item     `json:"item"`
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons,omitempty"` // every rule that keeps it, in the order of the Reason constants
}

// Plan decides, for each item, whether p keeps it. Items are grouped by
// Kind and Group, and p applies to each group on its own (each database's
// dumps, each set's snapshots). Within a group, items are ordered by Time,
// newest first, then by ID; never by object name, which a clock change or
// pg_upgrade does not keep in time order.
//
// Calendar rules follow loc: a day, week, month or year is the one of the
// item's Time in loc. The newest backup is always kept (reason "newest").
//
// The result holds one Decision per item, ordered by Kind, Group, then
// oldest first.
func Plan(items []Item, p Policy, now time.Time, loc *time.Location) []Decision {
	if loc == nil {
		loc = time.UTC
	}
	sorted := append([]Item(nil), items...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Kind != b.Kind {
			return kindOrder(a.Kind) < kindOrder(b.Kind)
		}
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		return a.ID < b.ID
	})
	out := make([]Decision, 0, len(sorted))
	for start := 0; start < len(sorted); {
		end := start + 1
		for end < len(sorted) && sorted[end].Kind == sorted[start].Kind && sorted[end].Group == sorted[start].Group {
			end++
		}
		out = append(out, planGroup(sorted[start:end], p, now, loc)...)
		start = end
	}
	return out
}

func kindOrder(k string) int {
	switch k {
	case KindBackup:
		return 0
	case KindDump:
		return 1
	case KindSnapshot:
		return 2
	}
	return 3
}

// bucket is one calendar rule: how many buckets it may still fill, the
// bucket of an item, and the last bucket filled.
type bucket struct {
	reason string
	count  int
	key    func(t time.Time, i int) int
	last   int
}

// planGroup applies p to one group, sorted oldest first.
func planGroup(items []Item, p Policy, now time.Time, loc *time.Location) []Decision {
	ds := make([]Decision, len(items))
	for i, it := range items {
		ds[i].Item = it
	}
	buckets := []*bucket{
		{reason: ReasonLast, count: p.KeepLast, key: func(_ time.Time, i int) int { return i }},
		{reason: ReasonDaily, count: p.KeepDaily, key: func(t time.Time, _ int) int {
			return t.Year()*10000 + int(t.Month())*100 + t.Day()
		}},
		{reason: ReasonWeekly, count: p.KeepWeekly, key: func(t time.Time, _ int) int {
			y, w := t.ISOWeek()
			return y*100 + w
		}},
		{reason: ReasonMonthly, count: p.KeepMonthly, key: func(t time.Time, _ int) int {
			return t.Year()*100 + int(t.Month())
		}},
		{reason: ReasonYearly, count: p.KeepYearly, key: func(t time.Time, _ int) int { return t.Year() }},
	}
	for _, b := range buckets {
		b.last = -1
	}
	empty := p.Empty()
	// Newest first, as restic walks snapshots: the first item seen in a
	// bucket is the newest of it.
	for i := len(items) - 1; i >= 0; i-- {
		d := &ds[i]
		t := d.Item.Time.In(loc)
		if empty {
			d.Reasons = append(d.Reasons, ReasonAll)
		}
		for _, b := range buckets {
			if b.count <= 0 {
				continue
			}
			if k := b.key(t, i); k != b.last {
				b.last = k
				b.count--
				d.Reasons = append(d.Reasons, b.reason)
			}
		}
		if p.KeepWithin > 0 && d.Item.Time.After(now.Add(-p.KeepWithin)) {
			d.Reasons = append(d.Reasons, ReasonWithin)
		}
		if d.Item.Pinned {
			d.Reasons = append(d.Reasons, ReasonPinned)
		}
		if d.Item.Kind == KindBackup && i == len(items)-1 {
			d.Reasons = append(d.Reasons, ReasonNewest)
		}
		d.Keep = len(d.Reasons) > 0
	}
	return ds
}
