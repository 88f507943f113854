// Package copy keeps a second repository (an off-site one) in step with
// the primary: Run copies every object the target lacks, as the stored
// ciphertext, without the age identity or the dedup key, and verifies
// each copy by content.
//
// # Order
//
// The marker comes first: created in the target when absent, and a target
// whose marker names another format, or that holds the binding of a
// cluster the source does not know, is refused before anything is copied.
//
// Then the source is listed twice. The first listing collects the catalog
// entries (backups/<id>/backup.json, dumps/<db>/<id>/dump.json,
// files/snapshots/<set>/<id>/snapshot.json); the second, taken after it,
// every other object (WAL, stream chunks, timeline histories, cluster
// bindings, backup parts, dump archives, packs, pack indexes, snapshot
// manifests, reservations). Every writer stores what an entry needs before
// the entry (a backup's parts and WAL, a dump's archive, a snapshot's
// packs, indexes and manifest), and nothing it needs is deleted while the
// entry exists. So everything a listed entry needs existed before the
// first listing ended and is in the second. The non-entry objects are
// copied first; only when every one of them is in the target, verified,
// are the entries copied, and each one only after the objects it names
// (backup parts, the dump archive, the snapshot manifest) are checked to
// be in the target. The packs a snapshot needs are named only inside its
// sealed manifest, which copy cannot read: they are covered by the
// ordering above, since every pack and index in the source is copied
// before any entry. A target listing therefore never shows an entry
// whose objects are missing: it lists nothing it cannot restore.
//
// # Writes
//
// Every object goes to the target with a create-only put (storage
// Storage.Create), so copy never replaces an object. Each copy hashes the
// source bytes (SHA-256) as they stream, then reads the target's object
// back and hashes it; a mismatch is an error. An object already in the
// target is compared by size (from the listings); with Options.Verify by
// content too. One that differs from the source is damaged: its bytes are
// first kept under quarantine/<time>/<key> in the target, then it is
// deleted and copied again. That delete is the only one copy makes, and
// only for an object shown to differ; where the key names the content's
// hash (packs, pack indexes) a source object that does not match its own
// key is reported instead, and nothing in the target is touched.
//
// # Crashes
//
// Puts are atomic: a copy killed at any point leaves whole objects only.
// Killed while copying non-entry objects, it leaves objects no entry in
// the target names yet (restores see nothing new); killed while copying
// entries, some entries are there, each with everything it needs. Killed
// between quarantining a damaged object and copying it again, the key is
// missing in the target and the next run copies it. A re-run lists both
// sides again and copies what is still missing.
package copy
