package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// Cluster names the PostgreSQL cluster a write serves (see catalog.Binding).
type Cluster struct {
	SystemID  string // decimal, from a segment header or IDENTIFY_SYSTEM
	PGVersion int    // server_version_num; 0 if unknown (wal-push)
	By        string // the command writing: wal-push, backup, wal-receive, cluster-upgrade
	Version   string // pitr's version
}

// Bindings lists the repository's cluster bindings, in key order.
func (r *Repo) Bindings(ctx context.Context) ([]catalog.BindingObject, error) {
	var out []catalog.BindingObject
	err := r.st.List(ctx, catalog.ClustersPrefix, func(oi storage.ObjectInfo) error {
		if o, ok := catalog.ParseBindingKey(oi.Key); ok {
			o.ModTime = oi.ModTime
			out = append(out, o)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list cluster bindings: %w", err)
	}
	return out, nil
}

// ReadBinding reads one binding's content.
func (r *Repo) ReadBinding(ctx context.Context, o catalog.BindingObject) (catalog.Binding, error) {
	rc, err := r.st.Get(ctx, o.Key)
	if err != nil {
		return catalog.Binding{}, fmt.Errorf("read cluster binding: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return catalog.Binding{}, fmt.Errorf("read cluster binding %s: %w", o.Key, err)
	}
	return catalog.UnmarshalBinding(b)
}

// EnsureCluster checks that the repository belongs to c's cluster. An
// unbound repository (new, or made before bindings existed) is bound to it.
// Another cluster's write gets an error wrapping catalog.ErrOtherCluster.
// It costs one listing, plus a write and a second listing when it binds.
func (r *Repo) EnsureCluster(ctx context.Context, c Cluster) error {
	objs, err := r.Bindings(ctx)
	if err != nil {
		return err
	}
	if _, ok := catalog.CurrentBinding(objs); !ok {
		if err := r.putBinding(ctx, 1, c); err != nil {
			return err
		}
		// Another cluster may have bound the repository at the same
		// moment: every writer that lists both picks the same winner.
		if objs, err = r.Bindings(ctx); err != nil {
			return err
		}
	}
	return matchBinding(objs, c.SystemID)
}

// RebindCluster records c as the repository's current cluster, the one
// whose writes are accepted from now on (pitr cluster-upgrade). It returns
// the binding it replaced, nil if the repository was unbound; when c is the
// current cluster already, it writes nothing and returns that binding.
func (r *Repo) RebindCluster(ctx context.Context, c Cluster) (prev *catalog.Binding, err error) {
	objs, err := r.Bindings(ctx)
	if err != nil {
		return nil, err
	}
	seq := 1
	if cur, ok := catalog.CurrentBinding(objs); ok {
		b, err := r.ReadBinding(ctx, cur)
		if err != nil {
			return nil, err
		}
		b.Seq, b.SystemID = cur.Seq, cur.SystemID // the key is what counts
		if cur.SystemID == c.SystemID {
			return &b, nil
		}
		prev, seq = &b, cur.Seq+1
	}
	if err := r.putBinding(ctx, seq, c); err != nil {
		return nil, err
	}
	if objs, err = r.Bindings(ctx); err != nil {
		return nil, err
	}
	return prev, matchBinding(objs, c.SystemID)
}

func (r *Repo) putBinding(ctx context.Context, seq int, c Cluster) error {
	key, err := catalog.BindingKey(seq, c.SystemID)
	if err != nil {
		return err
	}
	b := catalog.MarshalBinding(catalog.Binding{
		Seq: seq, SystemID: c.SystemID, PGVersion: c.PGVersion, Bound: time.Now(), By: c.By, Tool: "pitr " + c.Version,
	})
	// Create-only: a binding is never rewritten. ErrExist means this
	// cluster's binding of that number is there already (the caller's
	// listing then decides, as for a binding another writer made).
	if err := r.st.Create(ctx, key, bytes.NewReader(b)); err != nil && !errors.Is(err, storage.ErrExist) {
		return fmt.Errorf("bind repository to cluster %s: %w", c.SystemID, err)
	}
	return nil
}

func matchBinding(objs []catalog.BindingObject, systemID string) error {
	cur, ok := catalog.CurrentBinding(objs)
	if !ok {
		return errors.New("cluster binding vanished after it was written")
	}
	if cur.SystemID == systemID {
		return nil
	}
	e := &catalog.ClusterMismatchError{Bound: cur.SystemID, This: systemID}
	for _, o := range objs {
		if o.SystemID == systemID && o.Seq < cur.Seq {
			e.Replaced = true
		}
	}
	return e
}
