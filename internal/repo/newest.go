package repo

import (
	"context"
	"fmt"
	"sort"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// NewestOf is one database's dumps or one file set's snapshots, as pitr
// status and check need them: how many entries there are and the newest
// readable one, read without reading every entry (a year of nightly dumps
// is hundreds of entries, a check runs every few minutes).
type NewestOf struct {
	Name    string // database or set
	Entries int    // entries listed, readable or not
	// Dump or Snapshot is the newest readable entry (by id, the start
	// time); nil when none is readable.
	Dump     *catalog.Dump
	Snapshot *catalog.Snapshot
	// Damaged are the entries newer than it that could not be read.
	Damaged []string
}

// NewestDumps returns, by database, the newest readable dump: one
// listing of dumps/ and a read from the newest entry back to the first
// readable one.
func (r *Repo) NewestDumps(ctx context.Context) ([]NewestOf, error) {
	ids, err := r.entryIDs(ctx, catalog.DumpsPrefix, catalog.ParseDumpEntryKey)
	if err != nil {
		return nil, fmt.Errorf("list dumps: %w", err)
	}
	return newestOf(ids, func(n *NewestOf, id string) (bool, error) {
		d, reason, err := r.readDump(ctx, n.Name, id)
		if err != nil || reason != "" {
			return false, err
		}
		n.Dump = d
		return true, nil
	})
}

// NewestSnapshots is NewestDumps for file snapshots, by set.
func (r *Repo) NewestSnapshots(ctx context.Context) ([]NewestOf, error) {
	ids, err := r.entryIDs(ctx, catalog.SnapshotsPrefix, catalog.ParseSnapshotEntryKey)
	if err != nil {
		return nil, fmt.Errorf("list file snapshots: %w", err)
	}
	return newestOf(ids, func(n *NewestOf, id string) (bool, error) {
		s, reason, err := r.readSnapshot(ctx, n.Name, id)
		if err != nil || reason != "" {
			return false, err
		}
		n.Snapshot = s
		return true, nil
	})
}

// entryIDs lists the entry ids under prefix, by group.
func (r *Repo) entryIDs(ctx context.Context, prefix string, parse func(string) (string, string, bool)) (map[string][]string, error) {
	out := map[string][]string{}
	err := r.st.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if group, id, ok := parse(oi.Key); ok {
			out[group] = append(out[group], id)
		}
		return nil
	})
	return out, err
}

// newestOf reads, for each group in name order, entries newest first
// until read says one is readable.
func newestOf(ids map[string][]string, read func(n *NewestOf, id string) (bool, error)) ([]NewestOf, error) {
	names := make([]string, 0, len(ids))
	for name := range ids {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]NewestOf, 0, len(names))
	for _, name := range names {
		group := ids[name]
		sort.Slice(group, func(i, j int) bool { return catalog.IDLess(group[i], group[j]) })
		n := NewestOf{Name: name, Entries: len(group)}
		for i := len(group) - 1; i >= 0; i-- {
			ok, err := read(&n, group[i])
			if err != nil {
				return nil, err
			}
			if ok {
				break
			}
			n.Damaged = append(n.Damaged, group[i])
		}
		out = append(out, n)
	}
	return out, nil
}
