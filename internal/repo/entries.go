package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// ErrDamaged is wrapped when an entry exists but cannot be read as one
// (truncated, edited, or written by a newer pitr).
var ErrDamaged = errors.New("damaged entry")

// Reservation is the content of a reservation object: who took the id.
type Reservation struct {
	ID       string    `json:"id"`
	Reserved time.Time `json:"reserved"`
	Host     string    `json:"host"`
}

// ReserveID takes the first free id of the second t falls in: it creates
// the reservation object keyOf(id) create-only for catalog.BackupIDSeq(t, 0), then
// -1 and so on, so two jobs started in the same second get distinct ids
// that still sort by time, whichever store they share. It fails when all
// MaxIDSeq+1 ids of that second are taken. A reservation whose create
// answer was lost, then retried, finds itself taken and moves on, leaving
// an unused id: harmless, removed with the leftovers of incomplete backups.
func (r *Repo) ReserveID(ctx context.Context, t time.Time, keyOf func(id string) (string, error)) (string, error) {
	host, _ := os.Hostname()
	id, err := r.createFirstFree(ctx, t, keyOf, func(id string) []byte {
		b, _ := json.Marshal(Reservation{ID: id, Reserved: t.UTC(), Host: host})
		return append(b, '\n')
	})
	if err != nil {
		return "", fmt.Errorf("reserve id: %w", err)
	}
	return id, nil
}

// createFirstFree creates keyOf(id) create-only with body(id), for the
// first id of the second t falls in that is free: catalog.BackupIDSeq(t, 0),
// then -1 and so on up to catalog.MaxIDSeq. It returns the id taken.
func (r *Repo) createFirstFree(ctx context.Context, t time.Time, keyOf func(id string) (string, error), body func(id string) []byte) (string, error) {
	for seq := range catalog.MaxIDSeq + 1 {
		id := catalog.BackupIDSeq(t, seq)
		key, err := keyOf(id)
		if err != nil {
			return "", err
		}
		err = r.st.Create(ctx, key, bytes.NewReader(body(id)))
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, storage.ErrExist) {
			return "", fmt.Errorf("%s: %w", id, err)
		}
	}
	return "", fmt.Errorf("all %d ids of %s are taken", catalog.MaxIDSeq+1, catalog.BackupID(t))
}

// ReleaseID removes the reservation object key of a job that failed
// before storing anything else under its id, so it leaves nothing behind.
// It runs even when ctx is done, for at most 10 seconds; a failure only
// leaves the reservation, an incomplete backup or dump like any other.
func (r *Repo) ReleaseID(ctx context.Context, key string) { r.Discard(ctx, key) }

// Discard removes an object no entry names (a failed job's reservation or
// half-stored object), even when ctx is done, for at most 10 seconds. A
// failure only leaves the object behind, unlisted and harmless.
func (r *Repo) Discard(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = r.st.Delete(ctx, key)
}

// SaveEntry writes an entry (backup.json, dump.json) create-only, last,
// after everything it names is stored: an entry is never replaced. Finding the same bytes under key is success
// (this write, retried after its answer was lost); other bytes are an
// error wrapping storage.ErrExist.
func (r *Repo) SaveEntry(ctx context.Context, key string, b []byte) error {
	err := r.st.Create(ctx, key, bytes.NewReader(b))
	if err == nil || !errors.Is(err, storage.ErrExist) {
		return err
	}
	rc, gerr := r.st.Get(ctx, key)
	if gerr != nil {
		return fmt.Errorf("%w; reading it back: %w", err, gerr)
	}
	defer rc.Close()
	got, gerr := io.ReadAll(io.LimitReader(rc, int64(len(b))+1))
	if gerr != nil {
		return fmt.Errorf("%w; reading it back: %w", err, gerr)
	}
	if !bytes.Equal(got, b) {
		return fmt.Errorf("%w with other content; refusing to overwrite", err)
	}
	return nil
}
