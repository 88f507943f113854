package repo

import (
	"context"
	"fmt"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// abortStaleUploads aborts incomplete multipart uploads under backups/
// whose backup id (start time) and own start are both before cutoff: what a
// backup killed while uploading a part leaves, invisible to List and billed
// until aborted. A backup still running started its uploads after cutoff,
// so theirs are left alone. Stores without multipart uploads have nothing to
// abort. MinIO lists uploads by whole key only, so there this finds nothing;
// MinIO removes incomplete uploads itself after 24h (its
// api stale_uploads_expiry), and elsewhere a bucket lifecycle rule should.
func (r *Repo) abortStaleUploads(ctx context.Context, cutoff time.Time) (int, error) {
	up, ok := storage.UploadsOf(r.st)
	if !ok {
		return 0, nil
	}
	var stale []storage.Upload
	err := up.ListUploads(ctx, catalog.BackupsPrefix, func(u storage.Upload) error {
		id, ok := catalog.BackupIDOfKey(u.Key)
		if !ok {
			return nil
		}
		started, ok := catalog.BackupIDTime(id)
		if ok && started.Before(cutoff) && u.Initiated.Before(cutoff) {
			stale = append(stale, u)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list incomplete uploads of backups: %w", err)
	}
	n := 0
	for _, u := range stale {
		if err := up.AbortUpload(ctx, u.Key, u.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
