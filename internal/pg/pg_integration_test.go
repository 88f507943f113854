//go:build integration

package pg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

var record = flag.Bool("record", false, "record testdata/"+pg15Fixture+" from a scratch PostgreSQL")

func TestConnectAndServerInfo(t *testing.T) {
	c := testenv.Postgres(t, nil)
	ctx := t.Context()

	// An empty dsn takes everything from the PG* environment.
	t.Setenv("PGHOST", "127.0.0.1")
	t.Setenv("PGPORT", strconv.Itoa(c.Port))
	t.Setenv("PGUSER", "postgres")
	t.Setenv("PGSSLMODE", "disable")
	conn, err := Connect(ctx, "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	sys, err := IdentifySystem(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.QueryString(ctx, "SELECT system_identifier::text FROM pg_control_system()")
	if err != nil {
		t.Fatal(err)
	}
	if sys.SystemID != id || sys.Timeline != 1 || sys.XLogPos == 0 || sys.DBName != "" {
		t.Errorf("IDENTIFY_SYSTEM %+v, system id %s", sys, id)
	}

	info, err := ServerInfo(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	num, err := c.QueryInt(ctx, "SELECT current_setting('server_version_num')::int")
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != int(num) || info.Major() != 15 || info.WALSegmentSize != 16<<20 || info.DataDir != c.DataDir {
		t.Errorf("ServerInfo %+v, want version %d, 16 MB segments, data directory %s", info, num, c.DataDir)
	}

	// A role without pg_read_all_settings gets everything but the data directory.
	if err := c.Exec(ctx, "CREATE ROLE backup LOGIN REPLICATION"); err != nil {
		t.Fatal(err)
	}
	limited, err := Connect(ctx, c.DSN("postgres")+" user=backup replication=database", true)
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close(context.Background())
	if sys, err := IdentifySystem(ctx, limited); err != nil || sys.DBName != "postgres" {
		t.Errorf("IDENTIFY_SYSTEM with replication=database: %+v, %v", sys, err)
	}
	if info, err := ServerInfo(ctx, limited); err != nil || info.DataDir != "" || info.WALSegmentSize != 16<<20 {
		t.Errorf("ServerInfo as an unprivileged role: %+v, %v", info, err)
	}

	// Without replication, a replication setting in the dsn is dropped.
	plain, err := Connect(ctx, c.DSN("postgres")+" replication=true", false)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close(context.Background())
	if _, err := plain.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Errorf("SQL on a connection made without replication: %v", err)
	}
	if _, err := IdentifySystem(ctx, plain); err == nil {
		t.Error("IDENTIFY_SYSTEM worked on a connection made without replication")
	}
}

// backupCluster starts a cluster with a tablespace holding a table.
func backupCluster(t *testing.T) (*scratch.Cluster, string) {
	t.Helper()
	c := testenv.Postgres(t, nil)
	tsDir := testenv.Dir(t)
	for _, sql := range []string{
		fmt.Sprintf("CREATE TABLESPACE ts1 LOCATION '%s'", tsDir),
		"CREATE TABLE in_ts TABLESPACE ts1 AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g",
		"CREATE TABLE in_base AS SELECT g AS id FROM generate_series(1, 1000) g",
		"CHECKPOINT",
	} {
		if err := c.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
	return c, tsDir
}

func TestBaseBackupVerifies(t *testing.T) {
	c, tsDir := backupCluster(t)
	ctx := t.Context()
	conn, err := Connect(ctx, c.DSN("postgres"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var last [2]int64
	bb, err := StartBaseBackup(ctx, conn, BaseBackupOptions{
		Label: "pitr test", Fast: true, Manifest: true,
		Progress: func(done, total int64) { last = [2]int64{done, total} },
	})
	if err != nil {
		t.Fatal(err)
	}
	oid, err := c.QueryInt(ctx, "SELECT oid::int8 FROM pg_tablespace WHERE spcname = 'ts1'")
	if err != nil {
		t.Fatal(err)
	}
	if len(bb.Tablespaces) != 2 || bb.Tablespaces[0].OID != uint32(oid) || bb.Tablespaces[0].Location != tsDir || bb.Tablespaces[0].SizeKB <= 0 {
		t.Errorf("tablespaces %+v, want %d at %s, then the main data directory", bb.Tablespaces, oid, tsDir)
	}

	// Unpack as pg_basebackup -Fp would, the tablespace in place of its
	// pg_tblspc link, and let pg_verifybackup check every file.
	dir := testenv.Dir(t)
	var names []string
	var archived int64
	for {
		p, err := bb.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, p.Name)
		switch {
		case p.Kind == Manifest:
			err = writeFile(filepath.Join(dir, "backup_manifest"), bb)
		case p.Tablespace.OID == 0:
			archived += mustUntar(t, dir, bb)
		default:
			archived += mustUntar(t, filepath.Join(dir, "pg_tblspc", strconv.Itoa(int(p.Tablespace.OID))), bb)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	end, tli, err := bb.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("start %s end %s, %d bytes archived, last progress %v", bb.StartLSN, end, archived, last)
	if want := fmt.Sprintf("%d.tar base.tar backup_manifest", oid); strings.Join(names, " ") != want {
		t.Errorf("parts %v, want %s", names, want)
	}
	if end <= bb.StartLSN || tli != 1 || bb.Timeline != 1 {
		t.Errorf("start %s end %s timeline %d/%d", bb.StartLSN, end, bb.Timeline, tli)
	}
	if last[0] != archived || last[1] <= 0 {
		t.Errorf("last progress %v, archived %d bytes", last, archived)
	}
	label, err := os.ReadFile(filepath.Join(dir, "backup_label"))
	if err != nil || !strings.Contains(string(label), "LABEL: pitr test\n") {
		t.Errorf("backup_label: %q, %v", label, err)
	}
	if m, err := os.ReadFile(filepath.Join(dir, "tablespace_map")); err != nil || string(m) != fmt.Sprintf("%d %s\n", oid, tsDir) {
		t.Errorf("tablespace_map: %q, %v", m, err)
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "pg_wal")); err != nil || len(entries) != 1 { // archive_status
		t.Errorf("pg_wal holds %v, %v; want no WAL", entries, err)
	}
	if err := scratch.ChownToPostgres(dir); err != nil {
		t.Fatal(err)
	}
	out, err := c.RunAsOwner(ctx, "pg_verifybackup", "-n", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pg_verifybackup: %s", bytes.TrimSpace(out))

	// The connection is ready for more.
	if _, err := ServerInfo(ctx, conn); err != nil {
		t.Errorf("connection after the backup: %v", err)
	}
}

// writeFile copies r to a new file at name.
func writeFile(name string, r io.Reader) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mustUntar unpacks a tar stream into dir, refusing paths that leave it, and
// returns the bytes it read.
func mustUntar(t *testing.T, dir string, r io.Reader) int64 {
	t.Helper()
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := path.Clean(h.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			t.Fatalf("tar member %q leaves the directory", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o700)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(target), 0o700); err == nil {
				err = writeFile(target, tr)
			}
		default:
			t.Fatalf("tar member %q of type %q", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Read to the end of the part: tar stops at the first end block.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		t.Fatal(err)
	}
	return cr.n
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A corrupt page makes the server fail the backup only after it sent the
// end position; Finish must report it and leave the connection usable.
func TestBaseBackupChecksumFailure(t *testing.T) {
	c := testenv.Postgres(t, nil)
	ctx := t.Context()
	err := c.Exec(ctx, "CREATE TABLE victim AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 500) g")
	if err == nil {
		err = c.Exec(ctx, "CHECKPOINT")
	}
	if err != nil {
		t.Fatal(err)
	}
	rel, err := c.QueryString(ctx, "SELECT pg_relation_filepath('victim')")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir, rel), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("not what the checksum says"), 4000); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	conn, err := Connect(ctx, c.DSN("postgres"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	bb, err := StartBaseBackup(ctx, conn, BaseBackupOptions{Fast: true, Manifest: true})
	if err != nil {
		t.Fatal(err)
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
			t.Fatal(err)
		}
	}
	_, _, err = bb.Finish(ctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "XX001" {
		t.Fatalf("Finish: %v, want a data corruption error", err)
	}
	t.Logf("Finish: %v", err)
	if _, err := ServerInfo(ctx, conn); err != nil {
		t.Errorf("connection after the failed backup: %v", err)
	}
}

// Streaming a large cluster keeps the heap small, and cancelling or killing
// the backend mid-stream ends it with an error.
func TestBaseBackupLarge(t *testing.T) {
	c := testenv.Postgres(t, nil)
	ctx := t.Context()
	// About 300 MB of rows that do not compress away.
	err := c.Exec(ctx, "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 6) AS v FROM generate_series(1, 1200000) g")
	if err == nil {
		err = c.Exec(ctx, "CHECKPOINT")
	}
	if err != nil {
		t.Fatal(err)
	}

	t.Run("memory", func(t *testing.T) {
		conn, err := Connect(ctx, c.DSN("postgres"), true)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before, peak := ms.HeapInuse, ms.HeapInuse
		bb, err := StartBaseBackup(ctx, conn, BaseBackupOptions{Fast: true, Manifest: true})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		var total, sinceCheck int64
		for {
			_, err := bb.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for {
				n, err := bb.Read(buf)
				total += int64(n)
				if sinceCheck += int64(n); sinceCheck > 8<<20 {
					sinceCheck = 0
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, _, err := bb.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("streamed %d MB; heap in use %d kB before, at most %d kB during", total>>20, before>>10, peak>>10)
		if total < 250<<20 {
			t.Errorf("streamed only %d MB", total>>20)
		}
		if peak > before+16<<20 {
			t.Errorf("heap grew by %d kB while streaming", (peak-before)>>10)
		}
	})

	// readUntilError reads the backup until it fails, calling stop once
	// a few MB of base.tar went by.
	readUntilError := func(t *testing.T, ctx context.Context, conn *pgconn.PgConn, stop func()) error {
		bb, err := StartBaseBackup(ctx, conn, BaseBackupOptions{Fast: true, MaxRateKBps: 32 << 10})
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		var n int64
		buf := make([]byte, 32<<10)
		for {
			p, err := bb.Next(ctx)
			if err != nil {
				return err
			}
			for err == nil {
				var k int
				k, err = bb.Read(buf)
				if n += int64(k); p.Name == "base.tar" && n > 4<<20 {
					once.Do(stop)
				}
			}
			if err != io.EOF {
				return err
			}
		}
	}

	t.Run("cancel", func(t *testing.T) {
		conn, err := Connect(ctx, c.DSN("postgres"), true)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		err = readUntilError(t, cctx, conn, cancel)
		if !errors.Is(err, context.Canceled) || !conn.IsClosed() {
			t.Errorf("error %v (connection closed: %t), want context.Canceled and a closed connection", err, conn.IsClosed())
		}
	})

	t.Run("terminated", func(t *testing.T) {
		conn, err := Connect(ctx, c.DSN("postgres"), true)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		pid := conn.PID()
		err = readUntilError(t, ctx, conn, func() {
			if err := c.Exec(ctx, "SELECT pg_terminate_backend($1)", int64(pid)); err != nil {
				t.Error(err)
			}
		})
		// The FATAL reaches us only if the walsender was not in the middle
		// of a message; otherwise it just hangs up.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != "57P01" || err == nil || err == io.EOF || !conn.IsClosed() {
			t.Errorf("error %v (connection closed: %t), want admin shutdown or a lost connection, and a closed connection", err, conn.IsClosed())
		}
		t.Logf("after pg_terminate_backend: %v", err)
	})
}

// recorder keeps what the server sends while on is set.
type recorder struct {
	net.Conn
	on  bool
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if r.on {
		r.buf.Write(p[:n])
	}
	return n, err
}

// TestRecordPG15Fixture records testdata/pg15-base-backup.bin.gz, with the
// unit tests' fixture options, when run with -record.
func TestRecordPG15Fixture(t *testing.T) {
	if !*record {
		t.Skip("run with -record to rewrite testdata/" + pg15Fixture)
	}
	c, _ := backupCluster(t)
	ctx := t.Context()
	cfg, err := pgconn.ParseConfig(c.DSN("postgres") + " replication=true")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	cfg.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, conn net.Conn) (net.Conn, error) {
		rec.Conn = conn
		return rec, nil
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rec.on = true
	bb, err := StartBaseBackup(ctx, conn, fixtureOptions)
	if err != nil {
		t.Fatal(err)
	}
	parts, end := readAll(t, ctx, bb)
	rec.on = false
	t.Logf("recorded %d bytes: %d parts, tablespaces %+v, start %s, end %s", rec.buf.Len(), len(parts), bb.Tablespaces, bb.StartLSN, end)

	trimmed := trimRecording(t, splitFrames(t, rec.buf.Bytes()))
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(bytes.Join(trimmed, nil)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", pg15Fixture), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d messages, %d bytes gzipped", len(trimmed), gz.Len())
}

// trimRecording shrinks a recorded PostgreSQL 15 answer to a fixture: every
// message is kept as the server sent it except the archive data, where each
// archive is unpacked, files over 1 kB (relation files, mostly) are emptied,
// and the archive is packed again and sent in 32 kB messages like the
// server's. The manifest stays whole, so it lists sizes and checksums of the
// untrimmed files.
func trimRecording(t *testing.T, frames [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	var archive []byte
	inArchive := false
	flush := func() {
		if !inArchive {
			return
		}
		for _, c := range chunks(retar(t, archive), 32768) {
			out = append(out, encode(t, &pgproto3.CopyData{Data: append([]byte{'d'}, c...)}))
		}
		archive, inArchive = nil, false
	}
	var held [][]byte // progress messages sent during an archive go after it
	for _, f := range frames {
		if f[0] == 'd' && inArchive && f[5] == 'd' {
			archive = append(archive, f[6:]...)
			continue
		}
		if f[0] == 'd' && inArchive && f[5] == 'p' {
			held = append(held, f)
			continue
		}
		flush()
		out = append(out, held...)
		held = nil
		out = append(out, f)
		if f[0] == 'd' && f[5] == 'n' {
			inArchive = true
		}
	}
	return out
}

// retar rewrites a tar archive with the content of files over 1 kB dropped.
func retar(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tr := tar.NewReader(bytes.NewReader(b))
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if len(content) > 1024 && h.Name != "global/pg_control" {
			content = nil
		}
		h.Size = int64(len(content))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
