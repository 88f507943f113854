// Package verify checks that a repository holds what its entries say, and
// that what it holds can be read back (pitr verify; the restore drill is
// in drill*.go).
//
// Run lists the repository once, then checks:
//
//   - presence and sizes: every part a backup entry names, every dump's
//     archive, every snapshot's manifest, every pack an index names, with
//     the stored sizes the entries and indexes record;
//   - contents, read as a stream and discarded (nothing is written to
//     disk): WAL files and stream chunks against the SHA-256 in their key,
//     backup parts against backup.json, dumps against dump.json, manifests
//     against snapshot.json (then every chunk a manifest names must be in
//     some pack index), packs against the SHA-256 of their stored bytes
//     (their key) and each blob in them opened under the pack's key and
//     checked against the manifests' SHA-256;
//   - WAL chains: from each backup's start on every timeline it can reach
//     (the timeline histories say which), the archived WAL is continuous;
//     each gap is named with the window it breaks; a segment stored twice
//     with different content is named too.
//
// Without the identity (a codec without Identities) encrypted objects are
// not opened: presence and sizes are checked, and packs by the SHA-256 of
// their stored bytes, which needs no key. The result says so.
//
// A state file (Options.StateFile, in the local cache directory) records
// each object verified good, by key, size and modification time, so that
// the next run reads only new objects; Full re-reads everything. Subset
// (like restic's check --read-data-subset) reads only the objects whose
// key hashes into one of M classes, so M runs spread a full read. Every
// run still reads the entries (backup.json, dump.json, snapshot.json),
// the timeline histories and the pack indexes (from the local cache where
// it has them), and a manifest again when a pack or index has gone since
// it was verified: those carry what the checks above compare against.
//
// Verify never writes to the repository; the caller saves the report
// (repo.SaveReport). Killed at any point, it leaves the state file as it
// was before the run (it is replaced whole, by a rename, at the end).
package verify
