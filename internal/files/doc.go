// Package files takes, lists and restores snapshots of an application's
// files (file sets: uploads and secrets): content-defined chunks,
// deduplicated under a keyed hash a host can compute with only the age
// recipients and the repository's dedup key, sealed one by one into packs
// of about 16 MiB, with a sealed manifest of every path and its metadata.
// The formats are internal/catalog's (files.go); packs and the chunk index
// are read and written through internal/repo.
//
// # Taking a snapshot
//
// Backup checks the dedup key's fingerprint against the repository's
// (recording it, create-only, on first use), loads the chunk index (from
// the local cache where it can), then reserves the snapshot's id with a
// create-only files/snapshots/<set>/<id>/reserved.json. It walks each set
// path in byte order of the full path (one directory listing per level in
// memory, never the whole tree), and for each path writes one manifest
// line into the sealed manifest as it goes (repo.PutSealed over a pipe).
// A file's content is cut by restic's chunker (Rabin fingerprints, 512
// KiB to 8 MiB, about 1 MiB apart; the polynomial derived from the dedup
// key, so boundaries do not fingerprint known files); each chunk's ID is
// HMAC-SHA-256 under the dedup key, and a chunk the index lacks goes to
// the repo.PackWriter. The entry, snapshot.json, is written last, once
// the manifest and every pack are stored.
//
// A file whose size, mtime or ctime differs before and after it is read
// (or that reads longer or shorter than its size) is read again, up to 3
// times; one that never holds still is stored as last read, flagged
// Changed in the manifest, counted in the entry, and Backup returns an
// error wrapping ErrChanged with the stored snapshot. Sockets, devices and
// pipes are skipped (counted in the log).
//
// # What a crash leaves
//
//   - before the reservation: nothing but whole packs a concurrent or
//     earlier run stored, each with its index object;
//   - while walking: whole packs with their index objects (a pack is
//     stored before its index object, so every indexed chunk is readable),
//     the reservation, and at most a pack without an index object; the
//     manifest upload is abandoned (Put is atomic). Nothing is listed:
//     listings read snapshot.json. A rerun loads the index and stores only
//     the chunks no stored pack holds;
//   - after the manifest, before the entry: an unlisted manifest too;
//   - after the entry: a complete snapshot.
//
// A run that fails (storage down, a file it may not read, ctx cancelled)
// removes its manifest and reservation where it still can.
//
// # Secrets
//
// A secrets set is refused with encryption off. Its logs carry counts
// only: no path, no name, no content, at any level; its errors name the
// set path, not the file.
package files
