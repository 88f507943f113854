package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// ErrNoSuchItem is wrapped when a pin names no complete backup, dump or
// snapshot.
var ErrNoSuchItem = errors.New("no such item")

// ErrBadItemName is wrapped when a pin's argument is not of the form
// ID, DB/ID or SET/ID.
var ErrBadItemName = errors.New("not an item name")

// ResolveItem finds the complete item s names: a backup id, or a dump or
// snapshot written DB/ID or SET/ID ("dump:DB/ID" or "files:SET/ID" when a
// database and a set share the name).
func (r *Repo) ResolveItem(ctx context.Context, s string) (catalog.PinRef, error) {
	kind := ""
	if rest, ok := strings.CutPrefix(s, "dump:"); ok {
		kind, s = catalog.PinDump, rest
	} else if rest, ok := strings.CutPrefix(s, "files:"); ok {
		kind, s = catalog.PinSnapshot, rest
	}
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		if kind != "" || !catalog.ValidBackupID(s) {
			return catalog.PinRef{}, fmt.Errorf("%w: %q is not a backup id, DB/ID or SET/ID (e.g. 20261122T020000Z or app/20261122T020000Z)", ErrBadItemName, s)
		}
		if _, err := r.st.Stat(ctx, catalog.BackupEntryKey(s)); err != nil {
			return catalog.PinRef{}, notFound(err, "backup "+s)
		}
		return catalog.PinRef{Kind: catalog.PinBackup, ID: s}, nil
	}
	group, id := s[:i], s[i+1:]
	if !catalog.ValidBackupID(id) || group == "" {
		return catalog.PinRef{}, fmt.Errorf("%w: %q is not DB/ID or SET/ID (e.g. app/20261122T020000Z)", ErrBadItemName, s)
	}
	var found []catalog.PinRef
	if kind != catalog.PinSnapshot {
		if key, err := catalog.DumpEntryKey(group, id); err == nil {
			if _, err := r.st.Stat(ctx, key); err == nil {
				found = append(found, catalog.PinRef{Kind: catalog.PinDump, Group: group, ID: id})
			} else if !errors.Is(err, storage.ErrNotExist) {
				return catalog.PinRef{}, fmt.Errorf("look up dump %s: %w", s, err)
			}
		}
	}
	if kind != catalog.PinDump {
		if key, err := catalog.SnapshotEntryKey(group, id); err == nil {
			if _, err := r.st.Stat(ctx, key); err == nil {
				found = append(found, catalog.PinRef{Kind: catalog.PinSnapshot, Group: group, ID: id})
			} else if !errors.Is(err, storage.ErrNotExist) {
				return catalog.PinRef{}, fmt.Errorf("look up snapshot %s: %w", s, err)
			}
		}
	}
	switch len(found) {
	case 0:
		return catalog.PinRef{}, fmt.Errorf("%w: no complete dump or file snapshot %s in the repository", ErrNoSuchItem, s)
	case 1:
		return found[0], nil
	}
	return catalog.PinRef{}, fmt.Errorf("%s names a dump and a file snapshot: write dump:%s or files:%s", s, s, s)
}

func notFound(err error, what string) error {
	if errors.Is(err, storage.ErrNotExist) {
		return fmt.Errorf("%w: no complete %s in the repository", ErrNoSuchItem, what)
	}
	return fmt.Errorf("look up %s: %w", what, err)
}

// SavePin stores a pin record (pinned or not) for p.PinRef, create-only,
// with the first free record id of p.At's second.
func (r *Repo) SavePin(ctx context.Context, p *catalog.Pin) error {
	if p.Host == "" {
		p.Host, _ = os.Hostname()
	}
	p.At = p.At.UTC()
	_, err := r.createFirstFree(ctx, p.At, func(id string) (string, error) {
		return catalog.PinKey(p.PinRef, id)
	}, func(string) []byte { return catalog.MarshalPin(p) })
	if err != nil {
		return fmt.Errorf("save pin of %s: %w", p.PinRef, err)
	}
	return nil
}

// Pins is what the pin records say.
type Pins struct {
	// Newest is each item's newest record, pinned or not.
	Newest map[catalog.PinRef]*catalog.Pin
	// Superseded are the keys of records a newer record of the same item
	// replaces, and of every record of an item whose newest one unpins it:
	// retain removes them.
	Superseded []storage.ObjectInfo
}

// Pinned says whether ref's newest record pins it.
func (p *Pins) Pinned(ref catalog.PinRef) bool {
	n := p.Newest[ref]
	return n != nil && n.Pinned
}

// ListPins lists pins/ once and reads the newest record of each item.
func (r *Repo) ListPins(ctx context.Context) (*Pins, error) {
	type rec struct {
		at string
		oi storage.ObjectInfo
	}
	byRef := map[catalog.PinRef][]rec{}
	err := r.st.List(ctx, catalog.PinsPrefix, func(oi storage.ObjectInfo) error {
		if ref, at, ok := catalog.ParsePinKey(oi.Key); ok {
			byRef[ref] = append(byRef[ref], rec{at, oi})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	out := &Pins{Newest: map[catalog.PinRef]*catalog.Pin{}}
	refs := make([]catalog.PinRef, 0, len(byRef))
	for ref := range byRef {
		refs = append(refs, ref)
	}
	sort.Slice(refs, func(i, j int) bool {
		return refs[i].String() < refs[j].String() || refs[i].String() == refs[j].String() && refs[i].Kind < refs[j].Kind
	})
	for _, ref := range refs {
		recs := byRef[ref]
		sort.Slice(recs, func(i, j int) bool { return catalog.IDLess(recs[i].at, recs[j].at) })
		newest := recs[len(recs)-1]
		p, err := r.readPin(ctx, newest.oi.Key)
		if err != nil {
			return nil, err
		}
		p.PinRef = ref
		out.Newest[ref] = p
		for _, x := range recs[:len(recs)-1] {
			out.Superseded = append(out.Superseded, x.oi)
		}
		if !p.Pinned {
			out.Superseded = append(out.Superseded, newest.oi)
		}
	}
	return out, nil
}

// readPin reads one record; a damaged one counts as pinned, so that a bad
// record never lets retain delete what someone meant to keep.
func (r *Repo) readPin(ctx context.Context, key string) (*catalog.Pin, error) {
	rc, err := r.st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read pin %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read pin %s: %w", key, err)
	}
	p, err := catalog.UnmarshalPin(data)
	if err != nil {
		return &catalog.Pin{Pinned: true, Note: "damaged record " + key + ": " + err.Error(), At: time.Time{}}, nil
	}
	return p, nil
}
