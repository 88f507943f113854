// Package files takes, lists and restores snapshots of an application's
// files (file sets: uploads and secrets): content-defined chunks,
// deduplicated under a keyed hash a host can compute with only the age
// recipients and the repository's dedup key, sealed one by one into packs
// of about 16 MiB, with a sealed manifest of every path and its metadata.
// The formats are internal/catalog's (files.go); packs and the chunk index
// are read and written through internal/repo.
package files
