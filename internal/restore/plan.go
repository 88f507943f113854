package restore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/internal/backup"
	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// Plan is the backup a restore starts from and what the archive allows.
type Plan struct {
	Backup  *catalog.Backup
	Chain   wal.Chain
	Windows []backup.Window
	Warning string // something the user should know but that does not stop the restore
}

// Choose picks the backup for target: the newest complete backup whose
// WAL is archived and which ended before the target (never a backup newer
// than a time or LSN target), or the one named by backupID. It refuses
// targets the archive cannot reach, naming the recoverable window or the
// missing segment. Damaged entries and backups with a part missing are
// never chosen; naming one fails with the reason.
func Choose(ctx context.Context, st storage.Storage, target Target, backupID string) (*Plan, error) {
	l, err := backup.Load(ctx, st)
	if err != nil {
		return nil, err
	}
	if backupID != "" {
		if err := l.Problem(backupID); err != nil {
			return nil, err
		}
	}
	ix, err := wal.LoadIndex(ctx, st)
	if err != nil {
		return nil, err
	}
	intact := l.Intact()
	if len(intact) == 0 && len(l.Backups)+len(l.Damaged) > 0 {
		return nil, fmt.Errorf("no restorable backup: %d with a damaged entry, %d with a part missing (see 'pitr list')", len(l.Damaged), len(l.Backups))
	}
	return choose(intact, ix, target, backupID)
}

func choose(backups []*catalog.Backup, ix *wal.Index, target Target, backupID string) (*Plan, error) {
	us := backup.Check(backups, ix)
	p := &Plan{Windows: backup.Windows(us)}
	window := backup.Describe(p.Windows)
	if len(backups) == 0 {
		return nil, fmt.Errorf("no complete backup in the repository: run 'pitr backup' first")
	}
	var pick *backup.Usability
	for i := len(us) - 1; i >= 0; i-- {
		u := &us[i]
		if backupID != "" {
			if u.Backup.ID == backupID {
				pick = u
				break
			}
			continue
		}
		if !before(u.Backup, target) {
			continue
		}
		if pick == nil {
			pick = u
		}
		if u.Usable {
			pick = u
			break
		}
	}
	switch {
	case pick == nil && backupID != "":
		return nil, fmt.Errorf("backup %s: no such complete backup", backupID)
	case pick == nil:
		return nil, fmt.Errorf("target %s is before the end of the first backup (%s)", target, window)
	case backupID != "" && !before(pick.Backup, target):
		return nil, fmt.Errorf("backup %s ended after target %s: choose an older backup", backupID, target)
	case pick.Conflict != "":
		return nil, fmt.Errorf("backup %s cannot be restored: WAL segment %s is stored twice with different content (wal-fetch refuses it; remove the wrong copy, see 'pitr list')",
			pick.Backup.ID, pick.Conflict)
	case !pick.Usable:
		return nil, fmt.Errorf("backup %s cannot be made consistent: WAL segment %s is missing from the archive (the backup needs %s to %s)",
			pick.Backup.ID, pick.Chain.Missing, pick.Backup.StartWAL, pick.Backup.EndWAL)
	}
	p.Backup, p.Chain = pick.Backup, pick.Chain
	segSize := p.Backup.WALSegmentSize
	gap := func(reach string) error {
		return fmt.Errorf("gap in the WAL archive: segment %s is missing, so recovery from backup %s stops at %s (%s)%s",
			p.Chain.Missing, p.Backup.ID, p.Chain.LastStored.UTC().Format(time.RFC3339), reach, "")
	}
	switch target.Kind {
	case Time:
		if target.Time.After(p.Chain.LastStored) {
			if p.Chain.MoreAfter {
				return nil, gap("target " + target.String())
			}
			return nil, fmt.Errorf("target %s is after the last archived WAL (%s)", target, window)
		}
	case Latest:
		if p.Chain.MoreAfter {
			return nil, gap("later WAL exists but cannot be reached")
		}
	case LSN:
		seg := wal.SegmentOf(wal.Timeline(p.Backup.Timeline), uint64(target.LSN), segSize, false)
		if !p.Chain.Covers(seg, segSize) {
			if p.Chain.MoreAfter {
				return nil, gap("target " + target.String())
			}
			return nil, fmt.Errorf("target %s is after the last archived WAL (%s ends the archive)", target, p.Chain.Last)
		}
	case XID, Name:
		p.Warning = fmt.Sprintf("pitr cannot check in advance that %s lies in the archive; if recovery does not find it, the server stops with an error instead of promoting", target)
		if p.Chain.MoreAfter {
			return nil, gap("later WAL exists but cannot be reached")
		}
	}
	return p, nil
}

// before reports whether backup b is consistent before target, so recovery
// from b can stop at target.
func before(b *catalog.Backup, t Target) bool {
	switch t.Kind {
	case Time:
		return !b.EndTime.After(t.Time)
	case LSN:
		end, err := pglogrepl.ParseLSN(b.EndLSN)
		return err == nil && end <= t.LSN
	}
	return true
}
