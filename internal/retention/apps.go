package retention

import (
	"context"

	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

// ReasonApp keeps what an app point (issue 12) names: its snapshots and
// dumps, and the newest backup that ended before its restore point, so
// the point can still be restored. App points themselves are all kept.
const ReasonApp = "app"

// appNamed is what the app points in the repository need kept.
type appNamed struct {
	items map[catalog.PinRef]bool // snapshots and dumps, by kind, group, id
	// points are the restore points, each needing a backup ended before it.
	points []*catalog.AppRestorePoint
	// damaged: an app entry could not be read, so what it names is not
	// known: every snapshot and dump is kept.
	damaged bool
}

func listAppNamed(ctx context.Context, r *repo.Repo) (*appNamed, error) {
	apps, damaged, err := r.ListApps(ctx, "")
	if err != nil {
		return nil, err
	}
	n := &appNamed{items: map[catalog.PinRef]bool{}, damaged: len(damaged) > 0}
	for _, d := range damaged {
		zerolog.Ctx(ctx).Warn().Str("app", d.App).Str("id", d.ID).Str("reason", d.Reason).
			Msg("app point entry damaged: every snapshot and dump is kept")
	}
	for _, a := range apps {
		for _, s := range a.Snapshots {
			n.items[catalog.PinRef{Kind: catalog.PinSnapshot, Group: s.Set, ID: s.ID}] = true
		}
		for _, d := range a.Dumps {
			n.items[catalog.PinRef{Kind: catalog.PinDump, Group: d.Database, ID: d.ID}] = true
		}
		if a.RestorePoint != nil {
			n.points = append(n.points, a.RestorePoint)
		}
	}
	return n, nil
}

// keepNamed keeps, with ReasonApp, the decisions of kind the app points
// name that nothing else keeps.
func (n *appNamed) keepNamed(ds []Decision) {
	for i := range ds {
		d := &ds[i]
		ref := catalog.PinRef{Kind: d.Item.Kind, Group: d.Item.Group, ID: d.Item.ID}
		if !d.Keep && (n.items[ref] || n.damaged) {
			d.Keep, d.Reasons = true, append(d.Reasons, ReasonApp)
		}
	}
}

// keepBackups keeps, for each restore point, the newest backup of the
// same cluster that ended at or before it: the base a restore to the
// point starts from (the WAL from its start on stays with it).
func (n *appNamed) keepBackups(ds []Decision, byID map[string]*catalog.Backup) {
	for _, rp := range n.points {
		at, err := pglogrepl.ParseLSN(rp.LSN)
		if err != nil {
			continue
		}
		best := -1
		for i, d := range ds {
			b := byID[d.Item.ID]
			end, err := pglogrepl.ParseLSN(b.EndLSN)
			if err != nil || end > at || (rp.SystemID != "" && b.SystemID != "" && b.SystemID != rp.SystemID) {
				continue
			}
			if best < 0 || byID[ds[best].Item.ID].StartTime.Before(b.StartTime) {
				best = i
			}
		}
		if best >= 0 && !ds[best].Keep {
			ds[best].Keep, ds[best].Reasons = true, append(ds[best].Reasons, ReasonApp)
		}
	}
}
