// Package stream is pitr's WAL receiver: a physical replication client on a
// replication slot that stores WAL in the repository as it is written, so a
// lost server takes at most a second or two of commits with it.
//
// How it works. The receiver connects with replication=true, creates its
// physical slot if missing (RESERVE_WAL), and starts streaming at the
// beginning of the segment holding the slot's restart_lsn, as PostgreSQL's
// own walreceiver and pg_receivewal do: the server keeps that whole segment
// for the slot. Received bytes go straight into the segment's sealer (zstd
// and age, in memory: no 16 MiB buffer). Bytes the repository does not have
// yet are stored every ShipInterval (or every 4 MiB) as a chunk
// (catalog.StreamChunk: a byte range of the segment, its own sealed object)
// on an ordered lane, so no upload repeats bytes already stored. A completed
// segment's last bytes go out as a chunk too; chunks covering a segment are
// a whole segment to readers, so the stored position passes it at once,
// while a second lane seals it: a small object (catalog.Seal) naming its
// chunks and the whole segment's SHA-256, so nothing is uploaded twice.
// wal-push and every reader take a seal for a whole copy (its key carries
// the SHA-256: a push of the same segment stores nothing, a different one
// is a conflict, as with whole copies). A segment in more than
// MaxSealChunks chunks (--synchronous, a chunk per commit) is instead
// stored whole under the key wal-push uses, from the copy sealed in memory
// while it arrived, and its chunks removed: one object reads far faster
// than a thousand. A crash before the seal leaves chunks covering the
// segment, which readers take for a whole segment. Bytes the repository had before
// (a whole copy, or chunks from an earlier run) count as stored only once
// what the server sends hashes the same as their keys say.
//
// Feedback. The flush position reported to the server is only ever the end
// of WAL the repository has confirmed storing; PostgreSQL moves the slot's
// restart_lsn to it, so the server never recycles WAL the repository lacks.
// With Synchronous set, every flush is stored and reported at once, so a
// server that names the receiver in synchronous_standby_names commits only
// once the commit's WAL is in object storage. Flushes arriving while a
// chunk is being stored, or within GroupDelay of the first, go out as one
// chunk: commits wait for it as they would for their own, and the store
// sees one object per group, not per commit.
//
// Timelines. When the server's timeline ends (a promoted standby), the
// server ends the copy with the next timeline and its start; the receiver
// stores the unfinished segment's bytes as chunks, stores the new
// timeline's history file (TIMELINE_HISTORY), and continues on the new
// timeline from the segment holding the switch point.
//
// Crashes. Nothing local is needed to resume: after a crash, a restart or a
// lost connection the receiver starts again from the slot, lists the chunks
// of the first segment, and stores only what is missing. A crash between
// storing and reporting leaves chunks that overlap the next run's; readers
// pick a run of chunks covering the segment from byte 0 (wal.Coverage), and
// WAL bytes never change once flushed, so overlaps are harmless.
package stream
