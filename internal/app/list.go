package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

// ErrAmbiguous is wrapped when an app point id alone names points of
// more than one app.
var ErrAmbiguous = errors.New("ambiguous app point id")

// Find reads the app point ref names: APP/ID, APP/latest, APP (its
// newest), or an ID alone when one app has a point of that id.
func Find(ctx context.Context, r *repo.Repo, ref string) (*catalog.App, error) {
	if name, id, ok := strings.Cut(ref, "/"); ok {
		if !catalog.ValidSetName(name) {
			return nil, fmt.Errorf("app point %q: app name %q: want lower-case letters, digits, _ and -", ref, name)
		}
		if id != "latest" && !catalog.ValidBackupID(id) {
			return nil, fmt.Errorf("app point %q: id %q: want YYYYMMDDTHHMMSSZ or latest", ref, id)
		}
		return r.App(ctx, name, id)
	}
	if !catalog.ValidBackupID(ref) {
		if !catalog.ValidSetName(ref) {
			return nil, fmt.Errorf("app point %q: want ID, APP/ID or APP", ref)
		}
		return r.App(ctx, ref, "latest")
	}
	all, _, err := r.ListApps(ctx, "")
	if err != nil {
		return nil, err
	}
	var found []*catalog.App
	for _, a := range all {
		if a.ID == ref {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("app point %s: no such complete app point (see pitr app list)", ref)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, a := range found {
		names[i] = a.App + "/" + a.ID
	}
	return nil, fmt.Errorf("%w %s: name one of %s", ErrAmbiguous, ref, strings.Join(names, ", "))
}
