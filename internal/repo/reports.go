package repo

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// SaveReport stores rep under reports/<kind>/<id>.json, create-only, with
// the first free id of the second rep.Started falls in (rep.ID is set to
// it). Reports are results of verify and drills, not data: no restore
// reads them, and saving one is the only write those commands make.
func (r *Repo) SaveReport(ctx context.Context, rep *catalog.Report) error {
	if rep.Host == "" {
		rep.Host, _ = os.Hostname()
	}
	_, err := r.createFirstFree(ctx, rep.Started, func(id string) (string, error) {
		rep.ID = id
		return catalog.ReportKey(rep.Kind, id)
	}, func(string) []byte { return catalog.MarshalReport(rep) })
	if err != nil {
		return fmt.Errorf("save %s report: %w", rep.Kind, err)
	}
	return nil
}

// ListReports returns the keys of kind's reports, oldest first (by id:
// in key order "...Z-1.json" comes before "...Z.json").
func (r *Repo) ListReports(ctx context.Context, kind string) ([]string, error) {
	var ids []string
	err := r.st.List(ctx, catalog.ReportKindPrefix(kind), func(o storage.ObjectInfo) error {
		if k, id, ok := catalog.ParseReportKey(o.Key); ok && k == kind {
			ids = append(ids, id)
		}
		return nil
	})
	sort.Strings(ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i], _ = catalog.ReportKey(kind, id)
	}
	return keys, err
}

// LatestReport returns the newest report of kind, or nil when there is none.
func (r *Repo) LatestReport(ctx context.Context, kind string) (*catalog.Report, error) {
	keys, err := r.ListReports(ctx, kind)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	return r.readReport(ctx, keys[len(keys)-1])
}

func (r *Repo) readReport(ctx context.Context, key string) (*catalog.Report, error) {
	rc, err := r.st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	rep, err := catalog.ParseReport(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return rep, nil
}
