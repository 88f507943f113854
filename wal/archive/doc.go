// Package archive is PostgreSQL's archive_command and restore_command:
// Push (`pitr wal-push %p`) stores a WAL file create-only, with look-ahead
// at other .ready files and a spool of acknowledgements; Fetch (`pitr
// wal-fetch %f %p`) hands over only bytes whose SHA-256 matches the
// repository's record, assembling streamed and sealed segments from their
// chunks (a seal's SHA-256 checked over the whole), and Prefetch fetches
// the segments recovery will ask for next. A seal stored by wal-receive
// is a stored copy to Push: the same SHA-256 stores nothing.
//
// Exit codes matter here: Fetch returns an error wrapping ErrNotFound only
// when the repository answered and holds no copy of the file, the one case
// in which restore_command may exit 1 (recovery then ends); everything
// else must stop recovery (cmd/pitr maps it above 125).
package archive
