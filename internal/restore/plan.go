package restore

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/wal"
)

// Plan is the backup a restore starts from, the timeline recovery follows
// and what the archive allows.
type Plan struct {
	Backup  *catalog.Backup
	Chain   wal.Chain // along Timeline's history
	Windows []repo.Window
	Warning string // something the user should know but that does not stop the restore
	// Timeline is written as recovery_target_timeline; Why says why it was
	// chosen. Candidates are every timeline the backup can reach, chosen
	// one included, ascending.
	Timeline   wal.Timeline
	Why        string
	Candidates []wal.TimelineInfo
}

// Choose picks the timeline and the backup for target: the newest
// complete backup whose WAL is archived, which ended before the target
// (never a backup newer than a time or LSN target) and from which the
// chosen timeline is reachable, or the one named by backupID. It refuses
// targets the archive cannot reach, naming the recoverable window or the
// missing segment. Damaged entries and backups with a part missing are
// never chosen; naming one fails with the reason. The repository's codec
// reads the timeline history files.
func Choose(ctx context.Context, r *repo.Repo, target Target, backupID string, tl TimelineChoice) (*Plan, error) {
	l, err := r.ListBackups(ctx)
	if err != nil {
		return nil, err
	}
	if backupID != "" {
		if err := l.Problem(backupID); err != nil {
			return nil, err
		}
	}
	ix, err := r.WALIndex(ctx)
	if err != nil {
		return nil, err
	}
	backups := l.Intact()
	if len(backups) == 0 && len(l.Backups)+len(l.Damaged) > 0 {
		return nil, fmt.Errorf("no restorable backup: %d with a damaged entry, %d with a part missing (see 'pitr list')", len(l.Damaged), len(l.Backups))
	}
	var segSize int64
	if n := len(backups); n > 0 {
		segSize = backups[n-1].WALSegmentSize
	}
	ts, err := r.Timelines(ctx, ix, segSize)
	if err != nil {
		return nil, fmt.Errorf("read timeline histories: %w", err)
	}
	return choose(backups, ix, ts, target, backupID, tl)
}

func choose(backups []*catalog.Backup, ix *wal.Index, ts *wal.Timelines, target Target, backupID string, tl TimelineChoice) (*Plan, error) {
	if len(backups) == 0 {
		return nil, fmt.Errorf("no complete backup in the repository: run 'pitr backup' first")
	}
	// pool: the backups recovery may start from, oldest first.
	var pool []*catalog.Backup
	for _, b := range backups {
		if backupID != "" && b.ID != backupID {
			continue
		}
		if backupID != "" && !before(b, target) {
			return nil, fmt.Errorf("backup %s ended after target %s: choose an older backup", backupID, target)
		}
		if before(b, target) {
			pool = append(pool, b)
		}
	}
	if len(pool) == 0 && backupID != "" {
		return nil, fmt.Errorf("backup %s: no such complete backup", backupID)
	}
	if len(pool) == 0 {
		return nil, fmt.Errorf("target %s is before the end of the first backup (%s)", target, repo.Describe(repo.Windows(repo.Check(backups, ix))))
	}
	usable := func(b *catalog.Backup) (wal.Chain, bool) {
		c := ix.OwnChain(b.StartWAL, b.WALSegmentSize)
		return c, c.CoversWhole(b.EndWAL, b.WALSegmentSize)
	}
	newestUsable := func() *catalog.Backup {
		for i := len(pool) - 1; i >= 0; i-- {
			if _, ok := usable(pool[i]); ok {
				return pool[i]
			}
		}
		return nil
	}
	notConsistent := func(b *catalog.Backup) error {
		c, _ := usable(b)
		return fmt.Errorf("backup %s cannot be made consistent: WAL segment %s is missing from the archive (the backup needs %s to %s)",
			b.ID, c.Missing, b.StartWAL, b.EndWAL)
	}

	// The timeline first, then the newest backup that reaches it: a backup
	// taken on a rehearsal's timeline cannot reach production's, so it is
	// not chosen when production's WAL ends last.
	p := &Plan{}
	switch tl.Kind {
	case TimelineNumber:
		p.Timeline, p.Why = tl.N, "chosen with --timeline"
	case TimelineCurrent:
		b := newestUsable()
		if b == nil {
			return nil, notConsistent(pool[len(pool)-1])
		}
		p.Timeline, p.Why = wal.Timeline(b.Timeline), "--timeline current: the backup's own timeline"
	default:
		var ok []*catalog.Backup
		for _, b := range pool {
			if _, u := usable(b); u {
				ok = append(ok, b)
			}
		}
		latest, found := repo.LatestTimeline(ok, ts)
		if !found {
			return nil, notConsistent(pool[len(pool)-1])
		}
		p.Timeline = latest
		p.Why = "latest: its archived WAL ends last"
		if info, ok := ts.Get(p.Timeline); ok && !info.EndTime.IsZero() {
			p.Why += ", at " + info.EndTime.UTC().Format(time.RFC3339)
		}
	}

	var pick *catalog.Backup
	var refusal error
	for i := len(pool) - 1; i >= 0 && pick == nil; i-- {
		b := pool[i]
		if err := ts.Reachable(wal.Timeline(b.Timeline), repo.EndLSN(b), p.Timeline); err != nil {
			if refusal == nil {
				refusal = fmt.Errorf("backup %s (timeline %d, consistent at %s) cannot reach it: %v", b.ID, b.Timeline, b.EndLSN, err)
			}
			continue
		}
		if _, ok := usable(b); !ok {
			if backupID != "" || refusal == nil {
				refusal = notConsistent(b)
			}
			continue
		}
		pick = b
	}
	if pick == nil {
		if tl.Kind == TimelineNumber {
			if _, ok := ts.Get(p.Timeline); !ok && p.Timeline != 1 {
				return nil, fmt.Errorf("--timeline %d: timeline %d is not in the archive", p.Timeline, p.Timeline)
			}
			return nil, fmt.Errorf("--timeline %d is not reachable: %v", p.Timeline, refusal)
		}
		return nil, refusal
	}
	p.Backup = pick
	from := wal.Timeline(pick.Timeline)
	path, err := ts.Path(from, p.Timeline)
	if err != nil {
		return nil, err
	}
	p.Chain = ix.ChainOn(pick.StartWAL, pick.WALSegmentSize, path)
	if seg := repo.ConflictOn(ix.Conflicts(), pick, p.Chain); seg != "" {
		return nil, fmt.Errorf("backup %s cannot be restored: WAL segment %s is stored twice with different content (wal-fetch refuses it; remove the wrong copy, see 'pitr list')",
			pick.ID, seg)
	}
	for _, t := range ts.Candidates(from, repo.EndLSN(pick)) {
		info, ok := ts.Get(t)
		if !ok {
			info = wal.TimelineInfo{Timeline: t}
		}
		p.Candidates = append(p.Candidates, info)
	}
	p.Windows = repo.WindowsOn(backups, ix, ts, p.Timeline)
	if err := checkReach(p, target); err != nil {
		return nil, err
	}
	for _, t := range ts.All() {
		if t.HistoryErr != nil {
			p.Warning = strings.TrimPrefix(p.Warning+"; ", "; ") + fmt.Sprintf("timeline %d was not considered: %v", t.Timeline, t.HistoryErr)
		}
	}
	return p, nil
}

// notArchivedYet is the fix for a target past the end of the archived
// WAL: the WAL holding it is most likely still in the server's current
// segment, which is archived only when it fills.
const notArchivedYet = "if the server has run past it, its current WAL segment is not archived yet: run SELECT pg_switch_wal() on the server and retry, set archive_timeout so segments are archived at least that often, or run 'pitr wal-receive' to store WAL as it is written"

// checkReach refuses a target the plan's chain cannot reach.
func checkReach(p *Plan, target Target) error {
	segSize := p.Backup.WALSegmentSize
	window := repo.Describe(p.Windows)
	gap := func(reach string) error {
		return fmt.Errorf("gap in the WAL archive of timeline %d: segment %s is missing, so recovery from backup %s stops at %s (%s)",
			p.Timeline, p.Chain.Missing, p.Backup.ID, p.Chain.LastStored.UTC().Format(time.RFC3339), reach)
	}
	switch target.Kind {
	case Time:
		if target.Time.After(p.Chain.LastStored) {
			if p.Chain.MoreAfter {
				return gap("target " + target.String())
			}
			return fmt.Errorf("target %s is after the last archived WAL of timeline %d (%s); %s", target, p.Timeline, window, notArchivedYet)
		}
	case Latest:
		if p.Chain.MoreAfter {
			return gap("later WAL exists but cannot be reached")
		}
	case LSN:
		seg := wal.SegmentOf(wal.Timeline(p.Backup.Timeline), uint64(target.LSN), segSize, false)
		if !p.Chain.Covers(seg, segSize) {
			if p.Chain.MoreAfter {
				return gap("target " + target.String())
			}
			return fmt.Errorf("target %s is after the last archived WAL of timeline %d (%s ends the archive); %s", target, p.Timeline, p.Chain.Last, notArchivedYet)
		}
	case XID, Name:
		p.Warning = fmt.Sprintf("pitr cannot check in advance that %s lies in the archive; if recovery does not find it, the server stops with an error instead of promoting", target)
		if p.Chain.MoreAfter {
			return gap("later WAL exists but cannot be reached")
		}
	}
	return nil
}

// DescribeTimelines writes which timeline recovery follows and why, and,
// when the backup can reach more than one, the others, so that
// --timeline can pick one of them.
func (p *Plan) DescribeTimelines(w io.Writer) {
	fmt.Fprintf(w, "recovery follows timeline %d (%s)\n", p.Timeline, p.Why)
	if len(p.Candidates) < 2 {
		return
	}
	fmt.Fprintf(w, "backup %s can reach %d timelines (choose another with --timeline N):\n", p.Backup.ID, len(p.Candidates))
	for _, t := range p.Candidates {
		mark := " "
		if t.Timeline == p.Timeline {
			mark = "*"
		}
		fmt.Fprintf(w, "  %s timeline %d: %s; %s\n", mark, t.Timeline, DescribeBranch(t), DescribeEnd(t))
	}
}

// DescribeBranch renders where a timeline branched.
func DescribeBranch(t wal.TimelineInfo) string {
	switch t.Kind {
	case wal.BranchRestore, wal.BranchFailover:
		s := fmt.Sprintf("branched from timeline %d at %s", t.Parent, t.BranchLSN)
		if !t.BranchTime.IsZero() {
			s += " (" + t.BranchTime.UTC().Format(time.RFC3339) + ")"
		}
		if t.Kind == wal.BranchRestore {
			return s + " where a restore stopped: " + t.Reason
		}
		return s + " at a promotion: " + t.Reason
	case wal.BranchUnknown:
		if t.HistoryErr != nil {
			return "history unreadable: " + t.HistoryErr.Error()
		}
		return "history not read"
	}
	return "no parent"
}

// DescribeEnd renders where a timeline's archived WAL ends.
func DescribeEnd(t wal.TimelineInfo) string {
	if t.LastSegment == "" {
		if t.EndTime.IsZero() {
			return "no archived WAL"
		}
		return "no WAL of its own archived (history stored " + t.EndTime.UTC().Format(time.RFC3339) + ")"
	}
	return fmt.Sprintf("WAL ends at %s (%s, stored %s)", t.EndLSN, t.LastSegment, t.EndTime.UTC().Format(time.RFC3339))
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
