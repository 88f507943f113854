// Package repo is the repository layer every job stands on: opening a
// repository (its marker, format version and codec), the cluster it is
// bound to, sealed streams in and out, catalog entries (list, load, save
// last, reserve an ID), and the recoverable windows computed from the
// entries and the archived WAL.
//
// Everything it writes is written once: entries, reservations, bindings,
// the marker and WAL are created with storage.Storage.Create, so nothing
// stored is ever replaced. Backup parts and dump objects are stored under
// an ID reserved create-only first, so no two writers share a key. The
// only deletes are the leftovers of interrupted backups and dumps
// (CleanIncompleteBackups, ReleaseID, the failed dump's object) and what
// docs/FORMAT.md lists.
//
// Keys and entry formats are internal/catalog's; the WAL index and
// timeline histories are package wal's. A Repo ties them to one store and
// codec.
package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
)

// Repo is one repository: a store and the codec its objects are sealed
// and opened with. It is safe for concurrent use.
type Repo struct {
	st       storage.Storage
	codec    *envelope.Codec
	packKeys *packKeys // keys of packs read, shared by WithStore's and WithWorkers' copies
}

// New returns the repository in st without looking at it; Check or Ensure
// it before relying on the marker. codec may be nil for a job that reads
// only the listing (no objects opened or sealed).
func New(st storage.Storage, codec *envelope.Codec) *Repo {
	return &Repo{st: st, codec: codec, packKeys: newPackKeys()}
}

// Open returns the existing repository in st, for commands that read it:
// it creates nothing, and a place without a marker is "no repository at
// where" (an error wrapping catalog.ErrNoRepository), never an empty
// repository.
func Open(ctx context.Context, st storage.Storage, codec *envelope.Codec, where string) (*Repo, error) {
	r := New(st, codec)
	if err := r.Check(ctx, where); err != nil {
		return nil, err
	}
	return r, nil
}

// Create returns the repository in st for a command that writes to it,
// writing the marker if there is none (version is pitr's, recorded in it).
func Create(ctx context.Context, st storage.Storage, codec *envelope.Codec, version string) (*Repo, error) {
	r := New(st, codec)
	if err := r.Ensure(ctx, version); err != nil {
		return nil, err
	}
	return r, nil
}

// Store is the storage the repository lives in.
func (r *Repo) Store() storage.Storage { return r.st }

// Codec seals and opens the repository's objects.
func (r *Repo) Codec() *envelope.Codec { return r.codec }

// Encrypted says whether new objects are encrypted.
func (r *Repo) Encrypted() bool { return r.codec != nil && r.codec.Encrypt }

// WithStore returns the same repository reached through st, e.g. a
// separate upload lane or a monitored store.
func (r *Repo) WithStore(st storage.Storage) *Repo {
	return &Repo{st: st, codec: r.codec, packKeys: r.packKeys}
}

// WithWorkers returns the repository with a codec compressing on n
// workers (a base backup's parts); 0 keeps the codec's setting.
func (r *Repo) WithWorkers(n int) *Repo {
	if n == 0 || r.codec == nil {
		return r
	}
	c := *r.codec
	c.Workers = n
	return &Repo{st: r.st, codec: &c, packKeys: r.packKeys}
}

// Check returns nil when the store holds a repository marker of a format
// this pitr reads. A missing marker gives an error wrapping
// catalog.ErrNoRepository that names where.
func (r *Repo) Check(ctx context.Context, where string) error {
	b, err := r.readMarker(ctx)
	if errors.Is(err, storage.ErrNotExist) {
		return NoRepository(where, "no "+catalog.MarkerKey+" there")
	}
	if err != nil {
		return err
	}
	return catalog.CheckMarker(b)
}

// NoRepository returns the error readers give for a place without a
// repository; why says what was found instead.
func NoRepository(where, why string) error {
	return fmt.Errorf("%w at %s (%s; wal-push, backup, wal-receive, dump and daemon create one)", catalog.ErrNoRepository, where, why)
}

// Ensure creates the repository marker if absent, else checks its format.
// The marker is written create-only: of two writers starting a repository
// at once, one creates it and the other reads and checks it.
func (r *Repo) Ensure(ctx context.Context, version string) error {
	b, err := r.readMarker(ctx)
	if errors.Is(err, storage.ErrNotExist) {
		m := catalog.MarshalMarker(time.Now(), version)
		cerr := r.st.Create(ctx, catalog.MarkerKey, strings.NewReader(string(m)))
		if cerr == nil {
			return nil
		}
		if !errors.Is(cerr, storage.ErrExist) {
			return fmt.Errorf("create repository marker: %w", cerr)
		}
		b, err = r.readMarker(ctx) // another writer's
	}
	if err != nil {
		return err
	}
	return catalog.CheckMarker(b)
}

func (r *Repo) readMarker(ctx context.Context) ([]byte, error) {
	rc, err := r.st.Get(ctx, catalog.MarkerKey)
	if err != nil {
		return nil, fmt.Errorf("read repository marker: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read repository marker: %w", err)
	}
	return b, nil
}
