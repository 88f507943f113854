package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/pg"
	"github.com/pitr-dev/pitr/internal/progress"
)

// Backup methods (Options.Method).
const (
	MethodAuto   = "auto"   // direct when pitr runs on the database host, else stream
	MethodDirect = "direct" // read the data directory between pg_backup_start and pg_backup_stop
	MethodStream = "stream" // BASE_BACKUP over the replication protocol
)

// ErrNotLocal is wrapped when a direct backup is impossible from here.
var ErrNotLocal = errors.New("direct backup impossible")

// checkLocal tells whether dataDir, the server's data_directory, is this
// cluster's and readable here: global/pg_control must hold the system
// identifier IDENTIFY_SYSTEM reported (a path that exists here could be
// another cluster's). The error says why not, in one line.
func checkLocal(dataDir, systemID string) (controlFile, error) {
	if dataDir == "" {
		return controlFile{}, fmt.Errorf("%w: the role may not read data_directory (needs pg_read_all_settings)", ErrNotLocal)
	}
	if _, err := readDirNames(dataDir); err != nil {
		return controlFile{}, fmt.Errorf("%w: data directory %s: %v", ErrNotLocal, dataDir, errors.Unwrap(err))
	}
	ctl, err := readControlFile(dataDir)
	if err != nil {
		return controlFile{}, fmt.Errorf("%w: %v", ErrNotLocal, err)
	}
	if got := strconv.FormatUint(ctl.SystemID, 10); got != systemID {
		return controlFile{}, fmt.Errorf("%w: %s/global/pg_control holds system identifier %s, the server reports %s (another cluster's data directory)",
			ErrNotLocal, dataDir, got, systemID)
	}
	return ctl, nil
}

// direct is a backup in progress on a session of its own.
type direct struct {
	conn     *pgconn.PgConn // ordinary connection holding the backup
	dataDir  string
	major    int
	ctl      controlFile
	systemID string
	// checksums: data_checksums is on; segBlocks is RELSEG_SIZE.
	checksums bool
	segBlocks uint32
}

// prepareDirect connects and checks what a direct backup needs; the caller
// closes d.conn.
func prepareDirect(ctx context.Context, opts Options, srv pg.Server, systemID string) (*direct, error) {
	ctl, err := checkLocal(srv.DataDir, systemID)
	if err != nil {
		return nil, err
	}
	conn, err := pg.Connect(ctx, opts.DSN, false)
	if err != nil {
		return nil, err
	}
	d := &direct{conn: conn, dataDir: srv.DataDir, major: srv.Major(), ctl: ctl, systemID: systemID}
	if err := d.settings(ctx); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return d, nil
}

// settings reads what reading the files needs to know.
func (d *direct) settings(ctx context.Context) error {
	standby, err := pg.InRecovery(ctx, d.conn)
	if err != nil {
		return err
	}
	if standby {
		return fmt.Errorf("%w: the server is a standby (direct backups are taken from a primary)", ErrNotLocal)
	}
	v, err := pg.Setting(ctx, d.conn, "data_checksums")
	if err != nil {
		return err
	}
	if d.checksums = v == "on"; !d.checksums {
		return nil
	}
	if v, err = pg.Setting(ctx, d.conn, "block_size"); err != nil {
		return err
	}
	if v != strconv.Itoa(blockSize) {
		return fmt.Errorf("%w: block_size %s with data checksums (direct backups verify %d-byte pages only)", ErrNotLocal, v, blockSize)
	}
	if v, err = pg.Setting(ctx, d.conn, "segment_size"); err != nil {
		return err
	}
	seg, err := pg.ParseBytes(v)
	if err != nil || seg < blockSize || seg/blockSize > 1<<31 {
		return fmt.Errorf("segment_size %q: %v", v, err)
	}
	d.segBlocks = uint32(seg / blockSize)
	return nil
}

// directResult is what a direct backup stored.
type directResult struct {
	start, end pglogrepl.LSN
	timeline   uint32
}

// run takes the backup: pg_backup_start, every tablespace's tar, then
// base.tar: the data directory, global/pg_control after everything else,
// then pg_backup_stop, whose answer becomes the last two members,
// backup_label and tablespace_map (BASE_BACKUP sends them first; no reader
// depends on the order, and only the stop knows them). Then the manifest.
// store stores one part, in the order BASE_BACKUP sends them; started hears
// the start position.
func (d *direct) run(ctx context.Context, label string, fast bool, meter progress.Meter,
	started func(pglogrepl.LSN), store func(name string, src io.Reader, ts *catalog.Tablespace) error) (directResult, error) {
	log := zerolog.Ctx(ctx)
	t0 := time.Now()
	start, err := pg.BackupStart(ctx, d.conn, label, fast)
	if err != nil {
		return directResult{}, err
	}
	started(start)
	var pc *pageChecker
	if d.checksums {
		pc = &pageChecker{start: start, segBlocks: d.segBlocks, warn: func(path string, blk uint32, got, want uint16) {
			log.Warn().Str("file", path).Uint32("block", blk).Str("calculated", fmt.Sprintf("%X", got)).Str("expected", fmt.Sprintf("%X", want)).
				Msg("checksum verification failed")
		}}
	}
	tss, err := listTablespaces(d.dataDir)
	if err != nil {
		return directResult{}, fmt.Errorf("direct backup: %w", err)
	}
	vdir := versionDir(d.major, d.ctl.CatalogVersion)
	skipDirs := map[string]bool{}
	var trees [][]*entry
	for _, ts := range tss {
		w := &walker{root: ts.Location, prefix: "pg_tblspc/" + strconv.FormatUint(uint64(ts.OID), 10) + "/", versionDir: vdir, checksums: d.checksums}
		if fi, err := os.Lstat(filepath.Join(ts.Location, vdir)); err == nil && fi.IsDir() {
			_ = w.add(vdir, fi, "")
			if err := w.walk(vdir); err != nil {
				return directResult{}, fmt.Errorf("direct backup: tablespace %d: %w", ts.OID, err)
			}
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return directResult{}, fmt.Errorf("direct backup: tablespace %d: %w", ts.OID, err)
		} // gone meanwhile: an empty archive, as the server sends
		if rel, err := filepath.Rel(d.dataDir, ts.Location); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			skipDirs[filepath.ToSlash(rel)] = true // inside the data directory: stored once, as its own archive
		}
		trees = append(trees, w.out)
	}
	mw := &walker{root: d.dataDir, main: true, skipDirs: skipDirs, checksums: d.checksums}
	if err := mw.walk(""); err != nil {
		return directResult{}, fmt.Errorf("direct backup: %w", err)
	}
	var stop pg.BackupStopResult
	stopped := false
	doStop := func() error {
		if stopped {
			return nil
		}
		var err error
		if stop, err = pg.BackupStop(ctx, d.conn); err != nil {
			return err
		}
		stopped = true
		return checkTablespaceMap(stop.TablespaceMap, tss)
	}
	mw.out = append(mw.out,
		&entry{name: "global/pg_control", manifest: "global/pg_control", path: filepath.Join(d.dataDir, "global", "pg_control"), mode: 0o600, last: true},
		&entry{name: "backup_label", manifest: "backup_label", mode: 0o600, fill: func() ([]byte, error) {
			if err := doStop(); err != nil {
				return nil, err
			}
			return []byte(stop.Label), nil
		}},
		&entry{name: "tablespace_map", manifest: "tablespace_map", mode: 0o600, fill: func() ([]byte, error) {
			return []byte(stop.TablespaceMap), doStop()
		}},
	)
	var size int64
	entries := 0
	for _, t := range append(slices.Clone(trees), mw.out) {
		entries += len(t)
		for _, e := range t {
			size += e.size
		}
	}
	progress.SetTotal(meter, size)
	log.Debug().Int("tablespaces", len(tss)).Int("entries", entries).Int64("bytes", size).Msg("data directory listed")

	man := newManifestWriter(manifestAlgorithm)
	add := func(e *entry, size int64, sum []byte) { man.addFile(e.manifest, size, e.mtime, sum) }
	var total tarStats
	for i, ts := range tss {
		name := strconv.FormatUint(uint64(ts.OID), 10) + ".tar"
		st, err := d.storeTar(ctx, name, trees[i], pc, meter, add, &catalog.Tablespace{OID: ts.OID, Location: ts.Location}, store)
		if err != nil {
			return directResult{}, err
		}
		total.add(st)
	}
	st, err := d.storeTar(ctx, "base.tar", mw.out, pc, meter, add, nil, store)
	if err != nil {
		return directResult{}, err
	}
	total.add(st)
	if !stopped { // cannot happen: base.tar ends with the stop's answer
		return directResult{}, errors.New("direct backup: base.tar ended before pg_backup_stop")
	}
	if pc != nil && pc.Failures() > 0 {
		// As the server ends BASE_BACKUP: everything was read, nothing is listed.
		return directResult{}, fmt.Errorf("direct backup: checksum verification failure during base backup: %d pages", pc.Failures())
	}
	tli, err := pg.LabelTimeline(stop.Label)
	if err != nil {
		return directResult{}, fmt.Errorf("direct backup: %w", err)
	}
	if err := store("backup_manifest", bytesReader(man.finish(tli, start, stop.EndLSN)), nil); err != nil {
		return directResult{}, err
	}
	log.Info().Int("files", total.files).Int64("bytes", total.bytes).Int("shrunk", total.shrunk).Int("vanished", total.vanished).
		Dur("took", time.Since(t0).Round(time.Millisecond)).Msg("data directory read")
	return directResult{start: start, end: stop.EndLSN, timeline: tli}, nil
}

// checkTablespaceMap makes sure the tablespaces read are those the server
// listed in tablespace_map when the backup started: a tablespace created or
// dropped in between would otherwise be restored without its archive.
func checkTablespaceMap(m string, read []tablespaceDir) error {
	got, err := parseTablespaceMap(m)
	if err != nil {
		return fmt.Errorf("direct backup: %w", err)
	}
	if len(got) != len(read) {
		return fmt.Errorf("direct backup: tablespace_map lists %d tablespaces, pg_tblspc held %d", len(got), len(read))
	}
	for _, ts := range read {
		if _, ok := got[ts.OID]; !ok {
			return fmt.Errorf("direct backup: tablespace %d is not in tablespace_map", ts.OID)
		}
	}
	return nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func (s *tarStats) add(o tarStats) {
	s.files += o.files
	s.shrunk += o.shrunk
	s.vanished += o.vanished
	s.bytes += o.bytes
}

// storeTar writes entries as one tar part through store.
func (d *direct) storeTar(ctx context.Context, name string, entries []*entry, pc *pageChecker, meter progress.Meter, add func(*entry, int64, []byte),
	ts *catalog.Tablespace, store func(string, io.Reader, *catalog.Tablespace) error) (tarStats, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	var st tarStats
	var werr error
	go func() {
		defer close(done)
		st, werr = writeTar(ctx, pw, entries, pc, meter, add)
		pw.CloseWithError(werr)
	}()
	err := store(name, pr, ts)
	pr.CloseWithError(errors.New("upload ended")) // stops the writer if the upload failed
	<-done
	if werr != nil {
		return st, fmt.Errorf("direct backup %s: %w", name, werr)
	}
	if err != nil {
		return st, err
	}
	zerolog.Ctx(ctx).Debug().Str("part", name).Int("files", st.files).Int("shrunk", st.shrunk).Int("vanished", st.vanished).Msg("tar written")
	return st, nil
}
