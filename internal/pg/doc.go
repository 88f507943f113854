// Package pg holds what pitr asks of PostgreSQL itself: connections
// (Connect), the cluster's identity and settings (IdentifySystem,
// ServerInfo) and base backups streamed over the replication protocol
// (StartBaseBackup), or taken by the client itself between BackupStart and
// BackupStop (backupfuncs.go).
//
// # Base backups
//
// BASE_BACKUP answers with two result sets (start position; tablespaces,
// the main data directory last), then the archives and the manifest, then a
// result set with the end position
// (https://www.postgresql.org/docs/current/protocol-replication.html).
// How the archives travel changed in PostgreSQL 15:
//
//   - 15 and later: one CopyOutResponse; each CopyData starts with a type
//     byte: 'n' a new archive (name, tablespace location), 'd' data of the
//     current archive or manifest, 'p' progress (bytes done), 'm' the
//     manifest begins. The server ends each tar with its two zero blocks.
//     The old option syntax is rejected ("syntax error").
//   - 13 and 14: one CopyOut per archive, in the order of the tablespace
//     list, and one more for the manifest; the tars lack their end blocks,
//     which the client adds (pg_basebackup did).
//
// BaseBackup hides the difference: Next announces each part, Read streams
// it, one protocol message at a time, so memory does not grow with the
// cluster. pglogrepl's StartBaseBackup, NextTableSpace and FinishBaseBackup
// were written for the older framing: against PostgreSQL 15 the first
// NextTableSpace swallows the whole COPY stream, type bytes, progress and
// manifest included, as if it were one tar, and the second one (with a
// tablespace) fails on the end position's DataRow. They also keep tablespace
// sizes in an int8 and drop the main data directory's row, and
// FinishBaseBackup turns the error the server sends after the end position
// when data checksums failed into "expect command_complete, got
// *pgproto3.ErrorResponse", leaving the connection mid-protocol. So we speak
// the protocol ourselves through pgconn's ReceiveMessage, as pglogrepl does
// inside.
//
// A backup is good only once Finish returned nil: the server reports data
// checksum failures after everything was sent. When the client dies or
// gives up midway, the walsender aborts the backup on its side and nothing
// is left behind on the server; whatever parts were already stored are
// incomplete and must not be used.
package pg
