package pg

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// pg15Fixture was recorded from PostgreSQL 15 by the integration test
// TestRecordPG15Fixture (go test -tags integration -run TestRecordPG15Fixture
// ./internal/pg/ -args -record); see trimRecording for what it changed.
const pg15Fixture = "pg15-base-backup.bin.gz"

// fixtureOptions are the options both fixtures answer.
var fixtureOptions = BaseBackupOptions{Label: "pitr fixture", Fast: true, Manifest: true, Progress: func(int64, int64) {}}

// fixtureCase describes what a fixture holds.
type fixtureCase struct {
	file, version, query string
	tablespace           Tablespace // the one besides the main data directory
	start, end           string
	legacy               bool
}

var fixtureCases = []fixtureCase{
	{ // values as recorded
		file: pg15Fixture, version: "15.18 (Debian 15.18-0+deb12u1)",
		query:      "BASE_BACKUP (LABEL 'pitr fixture', PROGRESS, CHECKPOINT 'fast', WAIT false, TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')",
		tablespace: Tablespace{OID: 16384, Location: "/tmp/pitr-test-27616-dir-298688135", SizeKB: 146},
		start:      "0/2000028", end: "0/2000100",
	},
	{
		file: pg14Fixture, version: "14.12",
		query:      "BASE_BACKUP LABEL 'pitr fixture' PROGRESS FAST NOWAIT TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'",
		tablespace: Tablespace{OID: 16401, Location: pg14Tablespace, SizeKB: 9},
		start:      pg14Start, end: pg14End, legacy: true,
	},
}

// readPart is one part as a test read it.
type readPart struct {
	Part
	data []byte
}

// readAll runs a whole backup: every part read to its end, then Finish.
func readAll(t *testing.T, ctx context.Context, bb *BaseBackup) ([]readPart, pglogrepl.LSN) {
	t.Helper()
	var parts []readPart
	for {
		p, err := bb.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(bb)
		if err != nil {
			t.Fatalf("read %s: %v", p.Name, err)
		}
		parts = append(parts, readPart{p, data})
	}
	end, tli, err := bb.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tli != bb.Timeline {
		t.Errorf("end timeline %d, start %d", tli, bb.Timeline)
	}
	return parts, end
}

// untar returns the members of a tar archive, which must end properly.
func untar(t *testing.T, name string, b []byte) map[string]string {
	t.Helper()
	if len(b) < 1024 || !bytes.Equal(b[len(b)-1024:], make([]byte, 1024)) {
		t.Errorf("%s does not end with two zero blocks", name)
	}
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", name, h.Name, err)
		}
		files[h.Name] = string(content)
	}
}

func TestBaseBackupFixtures(t *testing.T) {
	for _, tc := range fixtureCases {
		t.Run(tc.version, func(t *testing.T) {
			var query string
			conn := serve(t, tc.version, readFixture(t, tc.file), false, &query)
			var progress [][2]int64
			opts := fixtureOptions
			opts.Progress = func(done, total int64) { progress = append(progress, [2]int64{done, total}) }
			bb, err := StartBaseBackup(t.Context(), conn, opts)
			if err != nil {
				t.Fatal(err)
			}
			if query != tc.query {
				t.Errorf("query\n %s\nwant\n %s", query, tc.query)
			}
			parts, end := readAll(t, t.Context(), bb)

			if len(bb.Tablespaces) != 2 || bb.Tablespaces[1].OID != 0 || bb.Tablespaces[1].Location != "" {
				t.Fatalf("tablespaces %+v, want one and the main data directory", bb.Tablespaces)
			}
			ts := bb.Tablespaces[0]
			var names []string
			for _, p := range parts {
				names = append(names, p.Name)
			}
			oid := archiveName(ts)
			if want := []string{oid, "base.tar", "backup_manifest"}; !slices.Equal(names, want) {
				t.Fatalf("parts %v, want %v", names, want)
			}
			if parts[0].Tablespace != &bb.Tablespaces[0] || parts[1].Tablespace != &bb.Tablespaces[1] || parts[2].Tablespace != nil ||
				parts[0].Kind != Archive || parts[1].Kind != Archive || parts[2].Kind != Manifest {
				t.Errorf("parts point at the wrong tablespaces or kinds: %+v", parts)
			}
			if ts != tc.tablespace || bb.StartLSN.String() != tc.start || end.String() != tc.end {
				t.Errorf("tablespace %+v start %s end %s, want %+v %s %s", ts, bb.StartLSN, end, tc.tablespace, tc.start, tc.end)
			}
			if end <= bb.StartLSN || bb.Timeline != 1 {
				t.Errorf("start %s end %s timeline %d", bb.StartLSN, end, bb.Timeline)
			}

			// The archives are whole tars; base.tar carries backup_label and
			// tablespace_map, which agree with the result sets.
			tsFiles := untar(t, parts[0].Name, parts[0].data)
			if len(tsFiles) == 0 {
				t.Errorf("%s is empty", parts[0].Name)
			}
			base := untar(t, "base.tar", parts[1].data)
			if !strings.HasPrefix(base["backup_label"], "START WAL LOCATION: "+bb.StartLSN.String()+" ") ||
				!strings.Contains(base["backup_label"], "LABEL: pitr fixture\n") {
				t.Errorf("backup_label:\n%s", base["backup_label"])
			}
			if want := strings.TrimSuffix(oid, ".tar") + " " + ts.Location + "\n"; base["tablespace_map"] != want {
				t.Errorf("tablespace_map %q, want %q", base["tablespace_map"], want)
			}
			if _, ok := base["global/pg_control"]; !ok {
				t.Error("base.tar lacks global/pg_control")
			}

			var m struct {
				Version   int `json:"PostgreSQL-Backup-Manifest-Version"`
				WALRanges []struct {
					Start string `json:"Start-LSN"`
					End   string `json:"End-LSN"`
				} `json:"WAL-Ranges"`
			}
			if err := json.Unmarshal(parts[2].data, &m); err != nil {
				t.Fatalf("manifest: %v", err)
			}
			if m.Version != 1 || len(m.WALRanges) != 1 || m.WALRanges[0].Start != bb.StartLSN.String() || m.WALRanges[0].End != end.String() {
				t.Errorf("manifest version %d, WAL ranges %+v", m.Version, m.WALRanges)
			}

			// Progress only grows, and ends at the size of the archives as
			// the server counted them (13 and 14: the bytes it sent).
			if len(progress) == 0 {
				t.Fatal("no progress reported")
			}
			last := progress[len(progress)-1]
			if want := int64(len(parts[0].data) + len(parts[1].data)); tc.legacy {
				want -= 2 * 1024 // our end-of-archive blocks
				if last[0] != want {
					t.Errorf("progress ends at %d, want %d", last[0], want)
				}
			} else if last[0] < int64(len(parts[1].data)) {
				t.Errorf("progress ends at %d", last[0])
			}
			if total := (ts.SizeKB + bb.Tablespaces[1].SizeKB) * 1024; last[1] != total {
				t.Errorf("progress total %d, want %d", last[1], total)
			}
			for i := 1; i < len(progress); i++ {
				if progress[i][0] < progress[i-1][0] {
					t.Fatalf("progress went back: %v", progress)
				}
			}
		})
	}
}

// A caller may skip parts: Next discards what is left of the current one.
func TestBaseBackupSkipsParts(t *testing.T) {
	for _, tc := range fixtureCases {
		t.Run(tc.version, func(t *testing.T) {
			var query string
			conn := serve(t, tc.version, readFixture(t, tc.file), false, &query)
			bb, err := StartBaseBackup(t.Context(), conn, fixtureOptions)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := bb.Finish(t.Context()); err == nil {
				t.Error("Finish before the parts were read succeeded")
			}
			var names []string
			for i := 0; ; i++ {
				p, err := bb.Next(t.Context())
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, p.Name)
				if i == 1 { // read a little of base.tar
					if _, err := io.ReadFull(bb, make([]byte, 700)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(names) != 3 {
				t.Errorf("parts %v", names)
			}
			if _, _, err := bb.Finish(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n, err := bb.Read(make([]byte, 10)); n != 0 || err == nil || err == io.EOF {
				t.Errorf("Read after Finish: %d, %v", n, err)
			}
		})
	}
}

// nth returns the index of the n-th frame (from 0) that matches.
func nth(t *testing.T, frames [][]byte, n int, match func([]byte) bool) int {
	t.Helper()
	for i, f := range frames {
		if match(f) {
			if n == 0 {
				return i
			}
			n--
		}
	}
	t.Fatalf("no frame %d of that kind", n)
	return 0
}

func isCopyData(f []byte) bool { return f[0] == 'd' }
func isCopyDone(f []byte) bool { return f[0] == 'c' }

// archiveStart matches where an archive begins: a CopyOutResponse (13, 14)
// or a new-archive message (15).
func archiveStart(legacy bool) func([]byte) bool {
	if legacy {
		return func(f []byte) bool { return f[0] == 'H' }
	}
	return func(f []byte) bool { return f[0] == 'd' && f[5] == 'n' }
}

func serverError(code, msg string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg}
}

func TestBaseBackupFailures(t *testing.T) {
	rfq := &pgproto3.ReadyForQuery{TxStatus: 'I'}
	tests := []struct {
		name   string
		mutate func(t *testing.T, frames [][]byte, legacy bool) [][]byte
		stage  string // where the error shows: "start", "read" or "finish"
		pgCode string // a server error, or "" when the connection must be closed
		msg    string
	}{
		{
			name: "refused at start",
			mutate: func(t *testing.T, _ [][]byte, _ bool) [][]byte {
				return [][]byte{encode(t, serverError("42501", "permission denied to start WAL sender"), rfq)}
			},
			stage: "start", pgCode: "42501", msg: "permission denied",
		},
		{
			name: "error inside an archive",
			mutate: func(t *testing.T, frames [][]byte, _ bool) [][]byte {
				head := frames[:nth(t, frames, 5, isCopyData)]
				return append(head, encode(t, serverError("58P01", "could not open file \"base/5/16385\": No such file or directory"), rfq))
			},
			stage: "read", pgCode: "58P01", msg: "could not open file",
		},
		{
			// A checksum failure is reported after the end position.
			name: "error after the end position",
			mutate: func(t *testing.T, frames [][]byte, _ bool) [][]byte {
				head := frames[:len(frames)-2] // without CommandComplete, ReadyForQuery
				return append(head, encode(t,
					&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "XX001", Message: "checksum verification failed in file \"./base/5/16385\", block 0"},
					serverError("XX001", "checksum verification failure during base backup"), rfq))
			},
			stage: "finish", pgCode: "XX001", msg: "checksum verification failure",
		},
		{
			name: "connection lost inside an archive",
			mutate: func(t *testing.T, frames [][]byte, _ bool) [][]byte {
				return frames[:nth(t, frames, 7, isCopyData)]
			},
			stage: "read", msg: "receive message failed",
		},
		{
			// base.tar and the manifest are left out: 15 jumps to its
			// CopyDone, 13 and 14 to the end position.
			name: "stream cut short",
			mutate: func(t *testing.T, frames [][]byte, legacy bool) [][]byte {
				i := nth(t, frames, 1, archiveStart(legacy))
				j := nth(t, frames, 0, isCopyDone)
				if legacy {
					j = nth(t, frames, 2, isCopyDone) + 1
				}
				return append(frames[:i:i], frames[j:]...)
			},
			stage: "read", msg: "backup ended after 1 of 2 archives",
		},
		{
			name: "unexpected message",
			mutate: func(t *testing.T, frames [][]byte, _ bool) [][]byte {
				head := frames[:nth(t, frames, 3, isCopyData)]
				return append(head, encode(t, &pgproto3.EmptyQueryResponse{}))
			},
			stage: "read", msg: "unexpected *pgproto3.EmptyQueryResponse",
		},
	}
	for _, fc := range fixtureCases {
		for _, tc := range tests {
			t.Run(fc.version+"/"+tc.name, func(t *testing.T) {
				frames := tc.mutate(t, splitFrames(t, readFixture(t, fc.file)), fc.legacy)
				var query string
				conn := serve(t, fc.version, bytes.Join(frames, nil), tc.pgCode == "", &query)
				err := runStages(t, conn, tc.stage)
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %v, want one with %q", err, tc.msg)
				}
				var pgErr *pgconn.PgError
				if tc.pgCode != "" {
					if !errors.As(err, &pgErr) || pgErr.Code != tc.pgCode {
						t.Errorf("error %v is not a server error %s", err, tc.pgCode)
					}
					if conn.IsClosed() {
						t.Error("connection closed after a server error")
					}
				} else if !conn.IsClosed() {
					t.Error("connection left open after losing its place in the protocol")
				}
			})
		}
	}
}

// runStages runs a backup until stage, where it returns the error; it fails
// the test if an earlier stage fails or stage succeeds.
func runStages(t *testing.T, conn *pgconn.PgConn, stage string) error {
	t.Helper()
	ctx := t.Context()
	bb, err := StartBaseBackup(ctx, conn, fixtureOptions)
	if stage == "start" || err != nil {
		if stage != "start" {
			t.Fatalf("start: %v", err)
		}
		return err
	}
	for {
		_, err := bb.Next(ctx)
		if err == io.EOF {
			break
		}
		if err == nil {
			_, err = io.Copy(io.Discard, bb)
		}
		if err != nil {
			if stage != "read" {
				t.Fatalf("read: %v", err)
			}
			if _, err2 := bb.Next(ctx); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Next after %v: %v", err, err2)
			}
			return err
		}
	}
	if stage == "read" {
		t.Fatal("read did not fail")
	}
	_, _, err = bb.Finish(ctx)
	return err
}

// A cancelled context stops a Read that waits for the server.
func TestBaseBackupCancel(t *testing.T) {
	for _, fc := range fixtureCases {
		t.Run(fc.version, func(t *testing.T) {
			frames := splitFrames(t, readFixture(t, fc.file))
			var query string // the server sends part of base.tar, then nothing
			conn := serve(t, fc.version, bytes.Join(frames[:nth(t, frames, 1, archiveStart(fc.legacy))+3], nil), false, &query)
			bb, err := StartBaseBackup(t.Context(), conn, fixtureOptions)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			time.AfterFunc(50*time.Millisecond, cancel)
			for err == nil {
				if _, err = bb.Next(ctx); err == nil {
					_, err = io.Copy(io.Discard, bb)
				}
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v, want context.Canceled", err)
			}
			if !conn.IsClosed() {
				t.Error("connection left open")
			}
		})
	}
}

func TestBaseBackupCommand(t *testing.T) {
	progress := func(int64, int64) {}
	tests := []struct {
		major int
		opts  BaseBackupOptions
		want  string
	}{
		{15, BaseBackupOptions{}, "BASE_BACKUP (LABEL 'pitr', WAIT false, TABLESPACE_MAP)"},
		{17, BaseBackupOptions{Label: "it's", Fast: true, MaxRateKBps: 1024, Manifest: true, WaitForArchive: true, Progress: progress},
			"BASE_BACKUP (LABEL 'it''s', PROGRESS, CHECKPOINT 'fast', MAX_RATE 1024, TABLESPACE_MAP, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')"},
		{14, BaseBackupOptions{}, "BASE_BACKUP LABEL 'pitr' NOWAIT TABLESPACE_MAP"},
		{13, BaseBackupOptions{Label: "nightly", Fast: true, MaxRateKBps: 32, Manifest: true, Progress: progress},
			"BASE_BACKUP LABEL 'nightly' PROGRESS FAST NOWAIT MAX_RATE 32 TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'"},
	}
	for _, tc := range tests {
		got, err := baseBackupCommand(tc.opts, tc.major)
		if err != nil || got != tc.want {
			t.Errorf("PostgreSQL %d %+v:\n got %s, %v\nwant %s", tc.major, tc.opts, got, err, tc.want)
		}
	}
	for _, opts := range []BaseBackupOptions{{Label: "a\x00b"}, {MaxRateKBps: -1}} {
		if _, err := baseBackupCommand(opts, 15); err == nil {
			t.Errorf("%+v accepted", opts)
		}
	}
}

func TestStartBaseBackupTooOld(t *testing.T) {
	var query string
	conn := serve(t, "12.19", nil, false, &query)
	if _, err := StartBaseBackup(t.Context(), conn, BaseBackupOptions{}); err == nil || !strings.Contains(err.Error(), "need 13") {
		t.Fatalf("error %v", err)
	}
}

func TestParseTablespaces(t *testing.T) {
	b := func(s string) []byte { return []byte(s) }
	tests := []struct {
		name string
		rows [][][]byte
		want []Tablespace
		ok   bool
	}{
		{"main only", [][][]byte{{nil, nil, nil}}, []Tablespace{{SizeKB: -1}}, true},
		{"sizes beyond int8", [][][]byte{{b("4294967295"), b("/ts"), b("900000")}, {nil, nil, b("123456789")}},
			[]Tablespace{{OID: 4294967295, Location: "/ts", SizeKB: 900000}, {SizeKB: 123456789}}, true},
		{"no rows", nil, nil, false},
		{"main not last", [][][]byte{{nil, nil, nil}, {b("16384"), b("/ts"), nil}}, nil, false},
		{"oid without location", [][][]byte{{b("16384"), b(""), nil}, {nil, nil, nil}}, nil, false},
		{"bad oid", [][][]byte{{b("-1"), b("/ts"), nil}, {nil, nil, nil}}, nil, false},
		{"bad size", [][][]byte{{nil, nil, b("x")}}, nil, false},
	}
	for _, tc := range tests {
		got, err := parseTablespaces(tc.rows)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %+v, %v", tc.name, got, err)
		}
	}
}
