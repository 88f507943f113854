package files

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

// FindSnapshot picks the snapshot of set to restore: id names one ("" or
// "latest": the newest), or, when at is not zero, the newest snapshot
// started at or before at (its start time is its id's and the one `pitr
// files list` shows). id and at are not both given.
func FindSnapshot(ctx context.Context, r *repo.Repo, set, id string, at time.Time) (*catalog.Snapshot, error) {
	if at.IsZero() {
		return r.Snapshot(ctx, set, id)
	}
	all, _, err := r.ListSnapshots(ctx, set)
	if err != nil {
		return nil, err
	}
	s := SnapshotAt(all, at)
	if s == nil {
		return nil, fmt.Errorf("no snapshot of file set %s started at or before %s", set, at.UTC().Format(time.RFC3339))
	}
	return s, nil
}

// SnapshotAt returns the newest of snaps (oldest first, as
// repo.ListSnapshots gives them) started at or before at, or nil.
func SnapshotAt(snaps []*catalog.Snapshot, at time.Time) *catalog.Snapshot {
	var best *catalog.Snapshot
	for _, s := range snaps {
		if !s.StartTime.After(at) {
			best = s
		}
	}
	return best
}

// CheckPatterns checks --include patterns (path.Match syntax, matched
// against absolute manifest paths such as /srv/app/uploads/*.png).
func CheckPatterns(patterns []string) error {
	for _, p := range patterns {
		if p == "" {
			return fmt.Errorf("include pattern: empty")
		}
		if _, err := path.Match(p, "/"); err != nil {
			return fmt.Errorf("include pattern %q: %v", p, err)
		}
	}
	return nil
}

// included says whether p or one of its parents matches a pattern: a
// directory that matches brings its whole tree.
func included(patterns []string, p string) bool {
	if len(patterns) == 0 {
		return true
	}
	for q := p; ; q = path.Dir(q) {
		for _, pat := range patterns {
			if ok, _ := path.Match(pat, q); ok {
				return true
			}
		}
		if q == "/" || q == "." || q == "" {
			return false
		}
	}
}
