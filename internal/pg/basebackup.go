package pg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
)

// BaseBackupOptions configure StartBaseBackup. The backup never includes WAL:
// pitr archives WAL on its own.
type BaseBackupOptions struct {
	Label string // backup_label's LABEL; "pitr" if empty
	Fast  bool   // checkpoint at once instead of spreading it over checkpoint_timeout

	// MaxRateKBps throttles the server to this many kB/s (32 to 1048576); 0 means no limit.
	MaxRateKBps int

	// Manifest asks for a backup_manifest with CRC32C checksums of every
	// file (PostgreSQL's default; SHA256 cost the walsender about 1
	// CPU-second per 1.5 GB), for pg_verifybackup; it arrives as the last
	// part.
	Manifest bool

	// WaitForArchive makes the server wait, before it reports the end, until
	// archive_command has archived the last WAL segment the backup needs.
	// Without it the caller must make sure that WAL reaches the archive.
	WaitForArchive bool

	// Progress, if set, is called from Next and Read with the archive bytes
	// sent so far and the server's estimate of the total (-1 if it gave none).
	// It also makes the server size the tablespaces before it starts
	// (PROGRESS), which costs a walk of the data directory.
	Progress func(done, total int64)
}

// Tablespace is one archive of a base backup.
type Tablespace struct {
	OID      uint32 // 0 for the main data directory
	Location string // directory on the server; "" for the main data directory
	SizeKB   int64  // the server's estimate; -1 unless Progress was set
}

// PartKind tells archives from the manifest.
type PartKind int

// Part kinds.
const (
	Archive  PartKind = iota + 1 // a tar archive of one tablespace, with end-of-archive blocks
	Manifest                     // the backup_manifest, JSON
)

// Part is one archive or the manifest, as Next announces it.
type Part struct {
	Kind       PartKind
	Name       string      // "base.tar", "<oid>.tar" or "backup_manifest"
	Tablespace *Tablespace // the archive's tablespace; nil for the manifest
}

// BaseBackup streams the answer to one BASE_BACKUP command. Call Next until it
// returns io.EOF, reading each part with Read, then Finish. Memory stays at
// about one protocol message (32 kB) whatever the size of the cluster.
//
// Errors wrap what went wrong. After an ERROR from the server (a
// *pgconn.PgError such as "could not find any WAL files") the connection is
// ready for new commands; after anything else (a FATAL, the network, ctx) it
// has been closed, since its place in the protocol is lost. Either way the
// BaseBackup keeps returning the error.
type BaseBackup struct {
	StartLSN    pglogrepl.LSN
	Timeline    uint32
	Tablespaces []Tablespace // in the order of the archives; the main data directory comes last

	conn     *pgconn.PgConn
	legacy   bool // PostgreSQL 13 and 14: one COPY per part, tars without end-of-archive blocks
	manifest bool
	progress func(done, total int64)
	total    int64 // -1 if unknown
	done     int64

	ctx      context.Context // from the Next call that opened the current part, for Read, which has no ctx of its own
	part     *Part           // the part Read reads; nil once it ended
	buf      []byte          // unread bytes of the current message
	ahead    *Part           // the next part, announced while the current one was read
	ended    bool            // all parts were sent
	archives int             // archives announced so far
	sentMan  bool            // the manifest was announced
	inCopy   bool            // legacy: inside a CopyOut
	endRead  bool            // legacy: the end position's RowDescription was read
	err      error           // sticky, unwrapped
}

// tarTrailer ends a tar archive: PostgreSQL before 15 leaves it to the client.
var tarTrailer = make([]byte, 1024)

// StartBaseBackup sends BASE_BACKUP on conn, a replication connection, and
// reads the start position and the tablespaces. PostgreSQL 15 and later send
// everything in one COPY stream of typed messages; 13 and 14 send one COPY per
// archive and one for the manifest. Both look the same through BaseBackup.
// See https://www.postgresql.org/docs/current/protocol-replication.html.
func StartBaseBackup(ctx context.Context, conn *pgconn.PgConn, opts BaseBackupOptions) (*BaseBackup, error) {
	major, err := majorVersion(conn.ParameterStatus("server_version"))
	if err != nil {
		return nil, fmt.Errorf("start base backup: %w", err)
	}
	if major < 13 {
		return nil, fmt.Errorf("start base backup: PostgreSQL %d is too old, need 13 or later", major)
	}
	cmd, err := baseBackupCommand(opts, major)
	if err != nil {
		return nil, fmt.Errorf("start base backup: %w", err)
	}
	b := &BaseBackup{conn: conn, legacy: major < 15, manifest: opts.Manifest, progress: opts.Progress}
	if err := b.start(ctx, cmd); err != nil {
		return nil, fmt.Errorf("start base backup: %w", err)
	}
	zerolog.Ctx(ctx).Debug().Str("start_lsn", b.StartLSN.String()).Int("tablespaces", len(b.Tablespaces)).Msg("base backup started")
	return b, nil
}

func (b *BaseBackup) start(ctx context.Context, cmd string) error {
	b.conn.Frontend().SendQuery(&pgproto3.Query{String: cmd})
	if err := b.conn.Frontend().Flush(); err != nil {
		return b.fail(fmt.Errorf("send BASE_BACKUP: %w", err))
	}
	rows, err := b.readResult(ctx, false, "recptr", "tli")
	if err != nil {
		return err
	}
	if b.StartLSN, b.Timeline, err = parsePosition(rows); err != nil {
		return b.fail(fmt.Errorf("start position: %w", err))
	}
	if rows, err = b.readResult(ctx, false, "spcoid", "spclocation", "size"); err != nil {
		return err
	}
	if b.Tablespaces, err = parseTablespaces(rows); err != nil {
		return b.fail(err)
	}
	b.total = 0
	for _, ts := range b.Tablespaces {
		if ts.SizeKB < 0 {
			b.total = -1
			break
		}
		b.total += ts.SizeKB << 10
	}
	if b.legacy {
		return nil
	}
	msg, err := b.recv(ctx)
	if err != nil {
		return err
	}
	if _, ok := msg.(*pgproto3.CopyOutResponse); !ok {
		return b.fail(fmt.Errorf("expected CopyOutResponse, got %T", msg))
	}
	return nil
}

// Next skips what is left of the current part and announces the next one,
// whose bytes Read then returns. It returns io.EOF after the last part. ctx
// also governs the Reads of the part it announces.
func (b *BaseBackup) Next(ctx context.Context) (Part, error) {
	if b.err != nil {
		return Part{}, fmt.Errorf("base backup: %w", b.err)
	}
	b.ctx, b.buf = ctx, nil
	for b.ahead == nil && !b.ended {
		if _, err := b.step(ctx); err != nil {
			return Part{}, fmt.Errorf("base backup: %w", err)
		}
	}
	b.part, b.ahead = b.ahead, nil
	if b.part == nil {
		return Part{}, io.EOF
	}
	return *b.part, nil
}

// Read reads the current part; it returns io.EOF at the part's end.
func (b *BaseBackup) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, fmt.Errorf("base backup: %w", b.err)
	}
	for len(b.buf) == 0 {
		if b.part == nil {
			return 0, io.EOF
		}
		data, err := b.step(b.ctx)
		if err != nil {
			return 0, fmt.Errorf("base backup: %w", err)
		}
		b.buf = data
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

// Finish reads the end position and the server's last word: an error here
// (say, data checksum failures) means the backup must not be used. Call it
// after Next returned io.EOF; the connection is then ready for new commands.
func (b *BaseBackup) Finish(ctx context.Context) (end pglogrepl.LSN, timeline uint32, err error) {
	if b.err == nil && !b.ended {
		return 0, 0, errors.New("finish base backup: parts left unread")
	}
	if b.err == nil {
		end, timeline, b.err = b.finish(ctx)
	}
	if b.err != nil {
		return 0, 0, fmt.Errorf("finish base backup: %w", b.err)
	}
	b.err = errors.New("already finished")
	zerolog.Ctx(ctx).Debug().Str("end_lsn", end.String()).Msg("base backup finished")
	return end, timeline, nil
}

func (b *BaseBackup) finish(ctx context.Context) (pglogrepl.LSN, uint32, error) {
	rows, err := b.readResult(ctx, b.endRead, "recptr", "tli")
	if err != nil {
		return 0, 0, err
	}
	end, timeline, err := parsePosition(rows)
	if err != nil {
		return 0, 0, b.fail(fmt.Errorf("end position: %w", err))
	}
	for {
		msg, err := b.recv(ctx)
		if err != nil {
			return 0, 0, err
		}
		switch msg.(type) {
		case *pgproto3.CommandComplete:
		case *pgproto3.ReadyForQuery:
			return end, timeline, nil
		default:
			return 0, 0, b.fail(fmt.Errorf("unexpected %T", msg))
		}
	}
}

// step reads messages until it has bytes of the current part, which it
// returns, or the start of the next part or the end of all parts, which it
// records in b.ahead or b.ended (and then returns nil).
func (b *BaseBackup) step(ctx context.Context) ([]byte, error) {
	for {
		msg, err := b.recv(ctx)
		if err != nil {
			return nil, err
		}
		var data []byte
		var next *Part
		end := false
		if b.legacy {
			data, next, end, err = b.legacyMessage(msg)
		} else {
			data, next, end, err = b.streamMessage(msg)
		}
		switch {
		case err != nil:
			return nil, b.fail(err)
		case len(data) > 0:
			return data, nil
		case next != nil || end:
			if end {
				if b.archives < len(b.Tablespaces) || b.manifest != b.sentMan {
					return nil, b.fail(fmt.Errorf("backup ended after %d of %d archives (manifest sent: %t)", b.archives, len(b.Tablespaces), b.sentMan))
				}
				b.ended = true
			}
			b.part, b.ahead, b.buf = nil, next, nil
			return nil, nil
		}
	}
}

// streamMessage interprets one message of the COPY stream of PostgreSQL 15
// and later (src/backend/backup/basebackup_copy.c): CopyData messages whose
// first byte says what follows, then CopyDone.
func (b *BaseBackup) streamMessage(msg pgproto3.BackendMessage) (data []byte, next *Part, end bool, err error) {
	switch msg := msg.(type) {
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return nil, nil, false, errors.New("empty CopyData")
		}
		switch msg.Data[0] {
		case 'n': // new archive: name, tablespace location
			name, rest, ok := cutString(msg.Data[1:])
			location, rest, ok2 := cutString(rest)
			if !ok || !ok2 || len(rest) > 0 {
				return nil, nil, false, errors.New("malformed new-archive message")
			}
			next, err = b.nextArchive(name, location)
			return nil, next, false, err
		case 'm':
			next, err = b.nextManifest()
			return nil, next, false, err
		case 'd':
			if b.part == nil {
				return nil, nil, false, errors.New("data outside of an archive")
			}
			return msg.Data[1:], nil, false, nil
		case 'p': // bytes of archives sent so far
			if len(msg.Data) != 9 {
				return nil, nil, false, errors.New("malformed progress message")
			}
			b.report(int64(binary.BigEndian.Uint64(msg.Data[1:])))
			return nil, nil, false, nil
		default:
			return nil, nil, false, fmt.Errorf("unknown CopyData type %q", msg.Data[0])
		}
	case *pgproto3.CopyDone:
		return nil, nil, true, nil
	}
	return nil, nil, false, fmt.Errorf("unexpected %T in COPY stream", msg)
}

// legacyMessage interprets one message of PostgreSQL 13 and 14: a CopyOut for
// each archive in the order of the tablespace list, one more for the manifest,
// then the end position as a result set. The server leaves the tar's two
// end-of-archive blocks to the client, so we add them.
func (b *BaseBackup) legacyMessage(msg pgproto3.BackendMessage) (data []byte, next *Part, end bool, err error) {
	switch msg := msg.(type) {
	case *pgproto3.CopyOutResponse:
		if b.inCopy {
			return nil, nil, false, errors.New("CopyOutResponse inside COPY")
		}
		b.inCopy = true
		if b.archives < len(b.Tablespaces) {
			ts := b.Tablespaces[b.archives]
			next, err = b.nextArchive(archiveName(ts), ts.Location)
		} else {
			next, err = b.nextManifest()
		}
		return nil, next, false, err
	case *pgproto3.CopyData:
		if !b.inCopy {
			return nil, nil, false, errors.New("CopyData outside COPY")
		}
		if b.part != nil && b.part.Kind == Archive {
			b.report(b.done + int64(len(msg.Data)))
		}
		return msg.Data, nil, false, nil
	case *pgproto3.CopyDone:
		if !b.inCopy {
			return nil, nil, false, errors.New("CopyDone outside COPY")
		}
		b.inCopy = false
		if b.part != nil && b.part.Kind == Archive {
			return tarTrailer, nil, false, nil
		}
		return nil, nil, false, nil
	case *pgproto3.RowDescription:
		if b.inCopy {
			return nil, nil, false, errors.New("RowDescription inside COPY")
		}
		if err := checkColumns(msg, "recptr", "tli"); err != nil {
			return nil, nil, false, err
		}
		b.endRead = true
		return nil, nil, true, nil
	}
	return nil, nil, false, fmt.Errorf("unexpected %T", msg)
}

// nextArchive checks an announced archive against the tablespace list.
func (b *BaseBackup) nextArchive(name, location string) (*Part, error) {
	if b.sentMan || b.archives >= len(b.Tablespaces) {
		return nil, fmt.Errorf("unexpected archive %q", name)
	}
	ts := &b.Tablespaces[b.archives]
	if name != archiveName(*ts) || location != ts.Location {
		return nil, fmt.Errorf("archive %q of %q, expected %q of %q", name, location, archiveName(*ts), ts.Location)
	}
	b.archives++
	return &Part{Kind: Archive, Name: name, Tablespace: ts}, nil
}

func (b *BaseBackup) nextManifest() (*Part, error) {
	if !b.manifest || b.sentMan || b.archives < len(b.Tablespaces) {
		return nil, errors.New("unexpected manifest")
	}
	b.sentMan = true
	return &Part{Kind: Manifest, Name: "backup_manifest"}, nil
}

// archiveName is the name PostgreSQL gives a tablespace's tar archive.
func archiveName(ts Tablespace) string {
	if ts.Location == "" {
		return "base.tar"
	}
	return strconv.FormatUint(uint64(ts.OID), 10) + ".tar"
}

func (b *BaseBackup) report(done int64) {
	b.done = done
	if b.progress != nil {
		b.progress(done, b.total)
	}
}

// recv returns the next message that matters: notices are logged, and an
// ErrorResponse becomes an error once the server is ready for a new command.
func (b *BaseBackup) recv(ctx context.Context) (pgproto3.BackendMessage, error) {
	for {
		msg, err := b.conn.ReceiveMessage(ctx)
		if err != nil {
			return nil, b.fail(err)
		}
		switch msg := msg.(type) {
		case *pgproto3.NoticeResponse:
			ev := zerolog.Ctx(ctx).Info()
			if msg.Severity == "WARNING" {
				ev = zerolog.Ctx(ctx).Warn()
			}
			ev.Str("severity", msg.Severity).Str("message", msg.Message).Msg("postgres notice during base backup")
		case *pgproto3.ParameterStatus, *pgproto3.NotificationResponse:
		case *pgproto3.ErrorResponse:
			pgErr := pgconn.ErrorResponseToPgError(msg)
			for {
				msg, err := b.conn.ReceiveMessage(ctx)
				if err != nil {
					return nil, b.fail(fmt.Errorf("%w; then %w", pgErr, err)) // one line, unlike errors.Join
				}
				if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
					b.err = pgErr
					return nil, pgErr
				}
			}
		default:
			return msg, nil
		}
	}
}

// fail records err and closes the connection, whose place in the protocol is
// lost. It returns the error to report from now on.
func (b *BaseBackup) fail(err error) error {
	if b.err != nil {
		return b.err
	}
	b.err = err
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.conn.Close(ctx) // the error at hand says more than a failed goodbye
	return err
}

// readResult reads one result set of the given columns up to its
// CommandComplete; header says its RowDescription was already read. NULL
// values come back as nil.
func (b *BaseBackup) readResult(ctx context.Context, header bool, cols ...string) ([][][]byte, error) {
	var rows [][][]byte
	for {
		msg, err := b.recv(ctx)
		if err != nil {
			return nil, err
		}
		switch msg := msg.(type) {
		case *pgproto3.RowDescription:
			if header {
				return nil, b.fail(errors.New("second RowDescription"))
			}
			if err := checkColumns(msg, cols...); err != nil {
				return nil, b.fail(err)
			}
			header = true
		case *pgproto3.DataRow:
			if !header || len(msg.Values) != len(cols) {
				return nil, b.fail(fmt.Errorf("unexpected row of %d columns", len(msg.Values)))
			}
			row := make([][]byte, len(msg.Values))
			for i, v := range msg.Values {
				row[i] = bytes.Clone(v) // the message is reused by the next receive
			}
			rows = append(rows, row)
		case *pgproto3.CommandComplete:
			if !header {
				return nil, b.fail(errors.New("CommandComplete without a result set"))
			}
			return rows, nil
		default:
			return nil, b.fail(fmt.Errorf("unexpected %T, expected a result set", msg))
		}
	}
}

func checkColumns(msg *pgproto3.RowDescription, cols ...string) error {
	var got []string
	for _, f := range msg.Fields {
		got = append(got, string(f.Name))
	}
	if strings.Join(got, ",") != strings.Join(cols, ",") {
		return fmt.Errorf("result columns %v, expected %v", got, cols)
	}
	return nil
}

// parsePosition parses the one row of (recptr, tli) that starts and ends a backup.
func parsePosition(rows [][][]byte) (pglogrepl.LSN, uint32, error) {
	if len(rows) != 1 || rows[0][0] == nil || rows[0][1] == nil {
		return 0, 0, fmt.Errorf("%d rows, expected 1", len(rows))
	}
	lsn, err := pglogrepl.ParseLSN(string(rows[0][0]))
	if err != nil {
		return 0, 0, err
	}
	tli, err := strconv.ParseUint(string(rows[0][1]), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("timeline: %w", err)
	}
	return lsn, uint32(tli), nil
}

// parseTablespaces parses rows of (spcoid, spclocation, size); the main data
// directory's row has NULL oid and location, size is NULL without PROGRESS.
func parseTablespaces(rows [][][]byte) ([]Tablespace, error) {
	tss := make([]Tablespace, 0, len(rows))
	for _, row := range rows {
		ts := Tablespace{Location: string(row[1]), SizeKB: -1}
		if row[0] != nil {
			oid, err := strconv.ParseUint(string(row[0]), 10, 32)
			if err != nil || ts.Location == "" {
				return nil, fmt.Errorf("tablespace %q at %q", row[0], row[1])
			}
			ts.OID = uint32(oid)
		} else if row[1] != nil {
			return nil, fmt.Errorf("tablespace without oid at %q", row[1])
		}
		if row[2] != nil {
			size, err := strconv.ParseInt(string(row[2]), 10, 64)
			if err != nil || size < 0 {
				return nil, fmt.Errorf("tablespace %q: size %q", row[0], row[2])
			}
			ts.SizeKB = size
		}
		tss = append(tss, ts)
	}
	if len(tss) == 0 || tss[len(tss)-1].Location != "" {
		return nil, errors.New("tablespace list does not end with the main data directory")
	}
	return tss, nil
}

// baseBackupCommand spells the options in the syntax of the server's major
// version: PostgreSQL 15 introduced a parenthesized list and dropped the old
// keywords.
func baseBackupCommand(opts BaseBackupOptions, major int) (string, error) {
	label := opts.Label
	if label == "" {
		label = "pitr"
	}
	if strings.ContainsRune(label, 0) {
		return "", errors.New("label contains a NUL byte")
	}
	if opts.MaxRateKBps < 0 {
		return "", fmt.Errorf("max rate %d kB/s is negative", opts.MaxRateKBps)
	}
	modern := major >= 15
	pick := func(new, old string) string {
		if modern {
			return new
		}
		return old
	}
	opt := []string{"LABEL '" + strings.ReplaceAll(label, "'", "''") + "'"}
	if opts.Progress != nil {
		opt = append(opt, "PROGRESS")
	}
	if opts.Fast {
		opt = append(opt, pick("CHECKPOINT 'fast'", "FAST"))
	}
	if !opts.WaitForArchive {
		opt = append(opt, pick("WAIT false", "NOWAIT"))
	}
	if opts.MaxRateKBps > 0 {
		opt = append(opt, "MAX_RATE "+strconv.Itoa(opts.MaxRateKBps))
	}
	// Tablespaces are then listed in tablespace_map instead of travelling as
	// symlinks, which survives any way of storing and unpacking the tar.
	opt = append(opt, "TABLESPACE_MAP")
	if opts.Manifest {
		opt = append(opt, "MANIFEST 'yes'", "MANIFEST_CHECKSUMS 'CRC32C'")
	}
	if modern {
		return "BASE_BACKUP (" + strings.Join(opt, ", ") + ")", nil
	}
	return "BASE_BACKUP " + strings.Join(opt, " "), nil
}

// majorVersion reads the major version from the server_version parameter,
// e.g. "15.18 (Debian 15.18-0+deb12u1)" or "16beta1".
func majorVersion(v string) (int, error) {
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(v)
	}
	major, err := strconv.Atoi(v[:end])
	if err != nil {
		return 0, fmt.Errorf("server_version %q: no major version", v)
	}
	return major, nil
}

// cutString splits a NUL-terminated string off the front of p.
func cutString(p []byte) (s string, rest []byte, ok bool) {
	before, after, found := bytes.Cut(p, []byte{0})
	return string(before), after, found
}
