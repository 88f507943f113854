package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// Stored is every object under one backup's, dump's or snapshot's prefix,
// as pitr retain sees it: complete (its entry is stored) or not.
type Stored struct {
	Prefix  string
	Group   string // the dump's database or the snapshot's set, when Entry is set
	ID      string // the id the prefix names
	Entry   string // the entry's key; "" for an incomplete item
	Objects []storage.ObjectInfo
	Newest  time.Time // the newest object's time
}

// Bytes is what the objects take in the store.
func (s *Stored) Bytes() int64 {
	var n int64
	for _, o := range s.Objects {
		n += o.Size
	}
	return n
}

// DeleteOrder returns the keys in the order retain deletes them: the entry
// first (the item stops being listed, so nothing uses it any more), the
// reservation last (so that a crash midway leaves an incomplete item that
// a later run cleans as a leftover, never an unlisted object without one).
func (s *Stored) DeleteOrder() []string {
	var first, mid, last []string
	for _, o := range s.Objects {
		switch {
		case o.Key == s.Entry:
			first = append(first, o.Key)
		case strings.HasSuffix(o.Key, "/"+catalog.ReservationName):
			last = append(last, o.Key)
		default:
			mid = append(mid, o.Key)
		}
	}
	return append(append(first, mid...), last...)
}

// Inventory is one listing of backups/, dumps/ and file snapshots, by
// prefix.
type Inventory struct {
	Backups, Dumps, Snapshots map[string]*Stored
}

// Inventory lists the objects of every backup, dump and file snapshot.
func (r *Repo) Inventory(ctx context.Context) (*Inventory, error) {
	inv := &Inventory{}
	var err error
	if inv.Backups, err = r.listStored(ctx, catalog.BackupsPrefix, 1, func(key string) (string, string, bool) {
		id, ok := catalog.ParseBackupEntryKey(key)
		return "", id, ok
	}); err != nil {
		return nil, err
	}
	if inv.Dumps, err = r.listStored(ctx, catalog.DumpsPrefix, 2, catalog.ParseDumpEntryKey); err != nil {
		return nil, err
	}
	if inv.Snapshots, err = r.listStored(ctx, catalog.SnapshotsPrefix, 2, catalog.ParseSnapshotEntryKey); err != nil {
		return nil, err
	}
	return inv, nil
}

// listStored groups the objects under root by their first depth path
// elements (the item's prefix).
func (r *Repo) listStored(ctx context.Context, root string, depth int, entry func(string) (string, string, bool)) (map[string]*Stored, error) {
	out := map[string]*Stored{}
	err := r.st.List(ctx, root, func(oi storage.ObjectInfo) error {
		parts := strings.SplitN(strings.TrimPrefix(oi.Key, root), "/", depth+1)
		if len(parts) <= depth {
			return nil // not under an item's prefix
		}
		id := parts[depth-1]
		if !catalog.ValidBackupID(id) {
			return nil
		}
		prefix := root + strings.Join(parts[:depth], "/") + "/"
		s := out[prefix]
		if s == nil {
			s = &Stored{Prefix: prefix, ID: id}
			out[prefix] = s
		}
		s.Objects = append(s.Objects, oi)
		if oi.ModTime.After(s.Newest) {
			s.Newest = oi.ModTime
		}
		if g, eid, ok := entry(oi.Key); ok && eid == id {
			s.Entry, s.Group = oi.Key, g
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", strings.TrimSuffix(root, "/"), err)
	}
	return out, nil
}

// Sorted returns the items of m oldest first, by id.
func Sorted(m map[string]*Stored) []*Stored {
	out := make([]*Stored, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return catalog.IDLess(out[i].ID, out[j].ID)
		}
		return out[i].Prefix < out[j].Prefix
	})
	return out
}

// OldReports returns the reports beyond the newest keep of each kind.
func (r *Repo) OldReports(ctx context.Context, keep int) ([]storage.ObjectInfo, error) {
	type rep struct {
		id string
		oi storage.ObjectInfo
	}
	byKind := map[string][]rep{}
	err := r.st.List(ctx, catalog.ReportsPrefix, func(oi storage.ObjectInfo) error {
		if kind, id, ok := catalog.ParseReportKey(oi.Key); ok {
			byKind[kind] = append(byKind[kind], rep{id, oi})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var out []storage.ObjectInfo
	for _, k := range kinds {
		rs := byKind[k]
		sort.Slice(rs, func(i, j int) bool { return catalog.IDLess(rs[i].id, rs[j].id) })
		for i := 0; i < len(rs)-keep; i++ {
			out = append(out, rs[i].oi)
		}
	}
	return out, nil
}

// ListWAL lists wal/ once: every archived file, history and streamed chunk.
func (r *Repo) ListWAL(ctx context.Context) ([]storage.ObjectInfo, error) {
	var out []storage.ObjectInfo
	err := r.st.List(ctx, "wal/", func(oi storage.ObjectInfo) error {
		out = append(out, oi)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list archived wal: %w", err)
	}
	return out, nil
}

// IndexOf builds the WAL index of a listing (ListWAL's, or what of it
// would remain after deletions) without listing again.
func IndexOf(ctx context.Context, objs []storage.ObjectInfo) (*wal.Index, error) {
	return wal.LoadIndex(ctx, listing(objs))
}

// listing is a storage.Storage that only lists: the objects it was made of.
type listing []storage.ObjectInfo

var errListingOnly = errors.New("a listing only lists")

func (l listing) Put(context.Context, string, io.Reader) error    { return errListingOnly }
func (l listing) Create(context.Context, string, io.Reader) error { return errListingOnly }
func (l listing) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, errListingOnly
}
func (l listing) GetRange(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return nil, errListingOnly
}
func (l listing) Stat(context.Context, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, errListingOnly
}
func (l listing) Delete(context.Context, string) error { return errListingOnly }
func (l listing) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	sorted := append([]storage.ObjectInfo(nil), l...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	for _, oi := range sorted {
		if !strings.HasPrefix(oi.Key, prefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}
