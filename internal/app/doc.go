// Package app takes application points (issue 12): everything one
// application needs (its database point, logical dumps, file sets, the
// versions it ran) taken together under one id, so that it can be brought
// back to one consistent moment.
//
// Backup's steps, and what a crash at each leaves:
//
//  1. Reserve the id (apps/<app>/<id>/reserved.json). A crash leaves the
//     reservation alone: unlisted, harmless.
//  2. Create the restore point pitr_app_<app>_<id> in the cluster
//     (pg_create_restore_point), then pg_switch_wal() so the segment holding
//     it is archived, and wait until it is in the repository. The database
//     point comes before the files: every file the restored database refers
//     to was already written when the files were read. A crash leaves a
//     restore point in WAL that no app point names.
//  3. Run the before hooks (e.g. redis-cli --rdb). A failure ends the backup.
//  4. Snapshot each file set, then take each dump and, with dumps, the
//     cluster's globals (roles, tablespaces: database _globals), which a
//     restore of the dumps applies first. Each is a complete item of its
//     own once listed; a crash leaves those already taken, listed as
//     ordinary snapshots and dumps, and no app point.
//  5. Run the after hooks, always once the before hooks started, also after
//     a failure (they undo what before hooks did); their failure fails a
//     backup that had succeeded.
//  6. Record the versions (command output; a failing command is recorded as
//     "error: ..." and does not fail the backup), and PostgreSQL's.
//  7. Write app.json, last. Only then is the app point listed.
//
// On failure the reservation is released; snapshots and dumps taken stay.
package app
