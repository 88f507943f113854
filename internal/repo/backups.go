package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// Damaged names a backup whose entry exists but cannot be read.
type Damaged struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Backups is what one listing of backups/ shows: readable entries, damaged
// ones, interrupted backups, and parts that an entry names but the store
// does not hold as recorded.
type Backups struct {
	Backups    []*catalog.Backup    // readable entries, oldest first
	Damaged    []Damaged            // oldest first; never nil
	Incomplete map[string]time.Time // id -> newest object, for ids without an entry
	// Parts holds, by backup id, what is wrong with the stored parts, e.g.
	// "part missing: base.tar"; such a backup is not restorable.
	Parts map[string]string
}

// ListBackups lists backups/ once and reads every entry. A storage error
// fails it; a damaged entry is reported in Damaged and skipped.
func (r *Repo) ListBackups(ctx context.Context) (*Backups, error) {
	objs, err := r.listBackupObjects(ctx)
	if err != nil {
		return nil, err
	}
	l := &Backups{Backups: []*catalog.Backup{}, Damaged: []Damaged{}, Incomplete: objs.incomplete(), Parts: map[string]string{}}
	for _, id := range objs.entries {
		b, reason, err := r.readBackup(ctx, id)
		if err != nil {
			return nil, err
		}
		if reason != "" {
			l.Damaged = append(l.Damaged, Damaged{ID: id, Reason: reason})
			continue
		}
		l.Backups = append(l.Backups, b)
		if p := partProblem(b, objs.sizes[id]); p != "" {
			l.Parts[id] = p
		}
	}
	return l, nil
}

// Problem explains why backup id cannot be restored from its entry or
// parts, or returns nil; it does not look at WAL.
func (l *Backups) Problem(id string) error {
	for _, d := range l.Damaged {
		if d.ID == id {
			return fmt.Errorf("backup %s: %w %s: %s", id, ErrDamaged, catalog.BackupEntryKey(id), d.Reason)
		}
	}
	if p := l.Parts[id]; p != "" {
		return fmt.Errorf("backup %s is not restorable: %s", id, p)
	}
	return nil
}

// Intact returns the backups whose parts are all stored as recorded.
func (l *Backups) Intact() []*catalog.Backup {
	out := make([]*catalog.Backup, 0, len(l.Backups))
	for _, b := range l.Backups {
		if l.Parts[b.ID] == "" {
			out = append(out, b)
		}
	}
	return out
}

// Check is Check for every readable backup, with a backup whose parts are
// not all stored marked not usable.
func (l *Backups) Check(ix *wal.Index) []Usability {
	us := Check(l.Backups, ix)
	for i := range us {
		if p := l.Parts[us[i].Backup.ID]; p != "" {
			us[i].Parts, us[i].Usable = p, false
		}
	}
	return us
}

// partProblem compares an entry's parts with the stored objects' sizes
// (one listing for all backups, no request per part).
func partProblem(b *catalog.Backup, stored map[string]int64) string {
	var missing, wrong []string
	for _, p := range b.Parts {
		size, ok := stored[p.Key]
		switch {
		case !ok:
			missing = append(missing, p.Name)
		case p.Stored > 0 && size != p.Stored:
			wrong = append(wrong, fmt.Sprintf("%s (%d bytes stored, entry says %d)", p.Name, size, p.Stored))
		}
	}
	var out []string
	if len(missing) == 1 {
		out = append(out, "part missing: "+missing[0])
	} else if len(missing) > 1 {
		out = append(out, "parts missing: "+strings.Join(missing, ", "))
	}
	if len(wrong) > 0 {
		out = append(out, "part size differs: "+strings.Join(wrong, ", "))
	}
	return strings.Join(out, "; ")
}

// backupObjects is one listing of backups/.
type backupObjects struct {
	entries []string                    // ids with an entry, sorted
	sizes   map[string]map[string]int64 // id -> key -> stored bytes
	newest  map[string]time.Time        // id -> newest object
}

func (r *Repo) listBackupObjects(ctx context.Context) (*backupObjects, error) {
	o := &backupObjects{sizes: map[string]map[string]int64{}, newest: map[string]time.Time{}}
	err := r.st.List(ctx, catalog.BackupsPrefix, func(oi storage.ObjectInfo) error {
		id, ok := catalog.BackupIDOfKey(oi.Key)
		if !ok {
			return nil
		}
		if o.sizes[id] == nil {
			o.sizes[id] = map[string]int64{}
		}
		o.sizes[id][oi.Key] = oi.Size
		if _, isEntry := catalog.ParseBackupEntryKey(oi.Key); isEntry {
			o.entries = append(o.entries, id)
		}
		if oi.ModTime.After(o.newest[id]) {
			o.newest[id] = oi.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	sort.Strings(o.entries)
	return o, nil
}

func (o *backupObjects) incomplete() map[string]time.Time {
	out := map[string]time.Time{}
	for id, t := range o.newest {
		out[id] = t
	}
	for _, id := range o.entries {
		delete(out, id)
	}
	return out
}

// Backup reads one backup's entry.
func (r *Repo) Backup(ctx context.Context, id string) (*catalog.Backup, error) {
	if !catalog.ValidBackupID(id) {
		return nil, fmt.Errorf("%q is not a backup id (want e.g. 20261122T020000Z)", id)
	}
	b, reason, err := r.readBackup(ctx, id)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		return nil, fmt.Errorf("backup %s: %w %s: %s", id, ErrDamaged, catalog.BackupEntryKey(id), reason)
	}
	return b, nil
}

// read returns an entry, or why it is damaged, or a storage error.
func (r *Repo) readBackup(ctx context.Context, id string) (b *catalog.Backup, damaged string, err error) {
	rc, err := r.st.Get(ctx, catalog.BackupEntryKey(id))
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", fmt.Errorf("backup %s: no such complete backup", id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read backup %s: %w", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxEntryBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read backup %s: %w", id, err)
	}
	if len(data) > maxEntryBytes {
		return nil, fmt.Sprintf("larger than %d bytes", maxEntryBytes), nil
	}
	b, err = catalog.UnmarshalBackup(data)
	if err != nil {
		return nil, err.Error(), nil
	}
	if b.ID != id {
		return nil, "entry names id " + b.ID, nil
	}
	return b, "", nil
}

const maxEntryBytes = 16 << 20

// IncompleteBackups returns the ids of backups with objects but no entry,
// and the time of their newest object.
func (r *Repo) IncompleteBackups(ctx context.Context) (map[string]time.Time, error) {
	objs, err := r.listBackupObjects(ctx)
	if err != nil {
		return nil, err
	}
	return objs.incomplete(), nil
}

// CleanIncompleteBackups deletes the objects of incomplete backups whose id (start
// time) and newest object are both before cutoff, and aborts the multipart
// uploads a killed backup left (see abortStaleUploads). It returns how many
// objects it deleted and uploads it aborted.
func (r *Repo) CleanIncompleteBackups(ctx context.Context, cutoff time.Time) (int, error) {
	inc, err := r.IncompleteBackups(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for id, newest := range inc {
		started, _ := catalog.BackupIDTime(id)
		if !started.Before(cutoff) || !newest.Before(cutoff) {
			continue
		}
		var keys []string
		if err := r.st.List(ctx, catalog.BackupPrefix(id), func(oi storage.ObjectInfo) error {
			keys = append(keys, oi.Key)
			return nil
		}); err != nil {
			return n, err
		}
		for _, k := range keys {
			if err := r.st.Delete(ctx, k); err != nil {
				return n, err
			}
			n++
		}
	}
	aborted, err := r.abortStaleUploads(ctx, cutoff)
	return n + aborted, err
}
