package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// DamagedDump names a dump whose entry exists but cannot be read.
type DamagedDump struct {
	Database string `json:"database"`
	ID       string `json:"id"`
	Reason   string `json:"reason"`
}

// ListDumps returns the complete dumps of db (every database when db is
// ""), by database, oldest first, and the damaged entries it skipped
// (never nil): one bad entry does not hide the others.
func (r *Repo) ListDumps(ctx context.Context, db string) ([]*catalog.Dump, []DamagedDump, error) {
	prefix := catalog.DumpsPrefix
	if db != "" {
		prefix = catalog.DumpDatabasePrefix(db)
	}
	type ref struct{ db, id string }
	var refs []ref
	err := r.st.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if d, id, ok := catalog.ParseDumpEntryKey(oi.Key); ok {
			refs = append(refs, ref{d, id})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list dumps: %w", err)
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].db != refs[j].db {
			return refs[i].db < refs[j].db
		}
		return refs[i].id < refs[j].id
	})
	out := make([]*catalog.Dump, 0, len(refs))
	damaged := []DamagedDump{}
	for _, x := range refs {
		d, reason, err := r.readDump(ctx, x.db, x.id)
		if err != nil {
			return nil, nil, err
		}
		if reason != "" {
			damaged = append(damaged, DamagedDump{Database: x.db, ID: x.id, Reason: reason})
			continue
		}
		out = append(out, d)
	}
	return out, damaged, nil
}

// Dump reads one dump's entry; id "latest" (or "") picks the newest
// readable one.
func (r *Repo) Dump(ctx context.Context, db, id string) (*catalog.Dump, error) {
	if id == "" || id == "latest" {
		all, _, err := r.ListDumps(ctx, db)
		if err != nil {
			return nil, err
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("no dumps of database %s in the repository", db)
		}
		return all[len(all)-1], nil
	}
	d, reason, err := r.readDump(ctx, db, id)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		key, _ := catalog.DumpEntryKey(db, id)
		return nil, fmt.Errorf("dump %s of %s: %w %s: %s", id, db, ErrDamaged, key, reason)
	}
	return d, nil
}

// read returns an entry, or why it is damaged, or a storage error.
func (r *Repo) readDump(ctx context.Context, db, id string) (d *catalog.Dump, damaged string, err error) {
	key, err := catalog.DumpEntryKey(db, id)
	if err != nil {
		return nil, "", err
	}
	rc, err := r.st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", fmt.Errorf("dump %s of %s: no such complete dump", id, db)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read dump %s: %w", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20+1))
	if err != nil {
		return nil, "", fmt.Errorf("read dump %s: %w", id, err)
	}
	if len(data) > 1<<20 {
		return nil, "larger than 1 MiB", nil
	}
	d, err = catalog.UnmarshalDump(data)
	if err != nil {
		return nil, err.Error(), nil
	}
	if d.ID != id || d.Database != db {
		return nil, fmt.Sprintf("entry names %s of %s", d.ID, d.Database), nil
	}
	return d, "", nil
}
