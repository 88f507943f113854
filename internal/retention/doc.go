// Package retention decides what the repository keeps (Plan, pure) and
// deletes the rest (Run). pitr retain is the only command that deletes.
//
// # Policy
//
// Plan follows restic's "forget" semantics per kind and group (each
// database's dumps, each set's snapshots): keep-last N keeps the newest N;
// keep-daily N the newest item of each of the last N calendar days that
// have one; weekly (ISO weeks, Monday to Sunday), monthly and yearly alike;
// keep-within D every item newer than now-D. An item kept by any rule is
// kept, and its reasons name every rule. Calendar days are those of the
// zone passed in: pitr retain and the daemon pass the host's local zone.
// Items are ordered by recorded start time, then id, never by object name
// (wal-g's retention bugs after pg_upgrade came from ordering by name). An
// empty policy keeps everything; pinned items are kept; the newest backup,
// and the newest restorable one, are always kept. What an app point
// (issue 12) names is kept while the app point is (reason "app"): its
// snapshots and dumps, and the newest backup that ended before its restore
// point; app points themselves are all kept (apps.go).
//
// # What is deleted, in which order
//
//  1. Backups, dumps and snapshots the plan drops: the entry first (from
//     then on nothing lists the item), then its parts, the reservation
//     last. A crash midway leaves an incomplete item, which a later run
//     removes as a leftover.
//  2. WAL no kept backup needs, only after the backups that needed it are
//     gone: a kept backup needs every segment, .partial and .backup file
//     from its start segment on, on its own timeline and on every later
//     one (a superset of the timelines descending from it; no history file
//     needs to be read, so retain needs no identity). Timeline history
//     files are never deleted. Stream chunks of a segment stored whole go
//     too.
//  3. Leftovers: incomplete backups, dumps and snapshots (objects without
//     an entry) whose id and newest object are both older than the grace
//     (backup_stale_after), and multipart uploads a killed backup left.
//  4. Pin records a newer record supersedes; reports beyond the newest 30
//     of each kind.
//  5. File packs no remaining snapshot references, through the pack
//     garbage collection's own two-phase protocol.
//  6. With S3 Object Lock, the locks of the kept backups and their WAL are
//     extended; objects the store refuses to delete while locked are
//     counted and reported, not an error. When a backup's entry is locked,
//     its WAL stays too.
//
// # Jobs running at the same time
//
// Retain never deletes what a running job will reference:
//   - It deletes only items with an entry (complete: no job writes to
//     them any more) or leftovers older than the grace; a running backup,
//     dump or snapshot has no entry yet and a reservation younger than the
//     grace.
//   - WAL: a backup that starts after the plan starts after the newest
//     complete backup, which is always kept, so its WAL is at or after a
//     kept backup's start. A backup running while retain plans (an
//     incomplete backup within the grace) keeps every WAL file stored
//     since its reservation. wal-push and wal-receive only add WAL after
//     the newest backup's start.
//   - Pins: the pin records are read again before deleting; an item
//     pinned meanwhile makes retain plan again.
//   - File packs only through the gc's two-phase protocol, which assumes
//     one retain at a time per repository.
//   - The grace must be longer than the longest job: a job running longer
//     looks like a leftover.
//
// A dry run (Options.DryRun) plans the same and deletes nothing: its
// Result equals the real run's, windows included.
package retention
