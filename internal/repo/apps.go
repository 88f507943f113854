package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// DamagedApp names an app point whose entry exists but cannot be read.
type DamagedApp struct {
	App    string `json:"app"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// ReserveAppID reserves an id for an app point of app started at t and
// returns it with the reservation's key (for ReleaseID on failure).
func (r *Repo) ReserveAppID(ctx context.Context, app string, t time.Time) (id, key string, err error) {
	id, err = r.ReserveID(ctx, t, func(id string) (string, error) { return catalog.AppReservationKey(app, id) })
	if err != nil {
		return "", "", fmt.Errorf("app %s: %w", app, err)
	}
	key, _ = catalog.AppReservationKey(app, id)
	return id, key, nil
}

// SaveApp writes an app point's entry, last, after everything it names is
// stored (create-only, see SaveEntry).
func (r *Repo) SaveApp(ctx context.Context, a *catalog.App) error {
	key, err := catalog.AppEntryKey(a.App, a.ID)
	if err != nil {
		return err
	}
	if err := r.SaveEntry(ctx, key, catalog.MarshalApp(a)); err != nil {
		return fmt.Errorf("save app point %s/%s: %w", a.App, a.ID, err)
	}
	return nil
}

// ListApps returns the complete app points of app (every app when app is
// ""), by app, oldest first, and the damaged entries it skipped (never
// nil): one bad entry does not hide the others.
func (r *Repo) ListApps(ctx context.Context, app string) ([]*catalog.App, []DamagedApp, error) {
	prefix := catalog.AppsPrefix
	if app != "" {
		prefix = catalog.AppPrefixOf(app)
	}
	type ref struct{ app, id string }
	var refs []ref
	err := r.st.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if a, id, ok := catalog.ParseAppEntryKey(oi.Key); ok {
			refs = append(refs, ref{a, id})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list app points: %w", err)
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].app != refs[j].app {
			return refs[i].app < refs[j].app
		}
		return refs[i].id < refs[j].id
	})
	out := make([]*catalog.App, 0, len(refs))
	damaged := []DamagedApp{}
	for _, x := range refs {
		a, reason, err := r.readApp(ctx, x.app, x.id)
		if err != nil {
			return nil, nil, err
		}
		if reason != "" {
			damaged = append(damaged, DamagedApp{App: x.app, ID: x.id, Reason: reason})
			continue
		}
		out = append(out, a)
	}
	return out, damaged, nil
}

// App reads one app point's entry; id "latest" (or "") picks the newest
// readable one of app.
func (r *Repo) App(ctx context.Context, app, id string) (*catalog.App, error) {
	if id == "" || id == "latest" {
		all, _, err := r.ListApps(ctx, app)
		if err != nil {
			return nil, err
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("no app points of %s in the repository", app)
		}
		return all[len(all)-1], nil
	}
	a, reason, err := r.readApp(ctx, app, id)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		key, _ := catalog.AppEntryKey(app, id)
		return nil, fmt.Errorf("app point %s of %s: %w %s: %s", id, app, ErrDamaged, key, reason)
	}
	return a, nil
}

// readApp returns an entry, or why it is damaged, or a storage error.
func (r *Repo) readApp(ctx context.Context, app, id string) (a *catalog.App, damaged string, err error) {
	key, err := catalog.AppEntryKey(app, id)
	if err != nil {
		return nil, "", err
	}
	rc, err := r.st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", fmt.Errorf("app point %s of %s: no such complete app point", id, app)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read app point %s: %w", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20+1))
	if err != nil {
		return nil, "", fmt.Errorf("read app point %s: %w", id, err)
	}
	if len(data) > 1<<20 {
		return nil, "larger than 1 MiB", nil
	}
	a, err = catalog.UnmarshalApp(data)
	if err != nil {
		return nil, err.Error(), nil
	}
	if a.ID != id || a.App != app {
		return nil, fmt.Sprintf("entry names %s of %s", a.ID, a.App), nil
	}
	return a, "", nil
}
