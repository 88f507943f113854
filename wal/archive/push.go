package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// PushOptions configures Push.
type PushOptions struct {
	Store storage.Storage
	Codec *envelope.Codec
	// SpoolDir holds acknowledgements of files uploaded ahead of their
	// archive_command call, and temporary sealed files. Default: "pitr" next
	// to the file pushed (inside pg_wal, which base backups skip).
	SpoolDir string
	// Concurrency is how many files one call uploads at once: the one asked
	// for plus look-ahead at other .ready files. 1 disables look-ahead.
	Concurrency int
	// RepoID names the repository in the spool's marker cache (the URL).
	RepoID  string
	Version string // pitr's version, recorded in a new repository's marker
}

// PushResult reports what one Push did.
type PushResult struct {
	Name      string
	Key       string
	Bytes     int64 // plaintext
	Stored    int64 // bytes stored (0 if it was stored already)
	Existed   bool  // same content was archived before
	Acked     bool  // an earlier call's look-ahead had stored it
	LookAhead int   // other .ready files stored by this call
}

// ack is what look-ahead records in the spool once a file is safely stored.
// It is only trusted while the file in pg_wal is the same file (size, mtime
// and inode unchanged): PostgreSQL does not touch a .ready segment until its
// archive_command succeeds, and a new cluster has new inodes.
type ack struct {
	Key     string `json:"key"`
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
	Inode   uint64 `json:"inode"`
	Stored  int64  `json:"stored"`
}

// Push archives the file at path (archive_command's %p). It returns nil only
// once the file's content is durably stored in the repository: uploaded now
// and confirmed by the store, found there with the same SHA-256, or
// acknowledged by an earlier call's look-ahead and confirmed present.
func Push(ctx context.Context, path string, opts PushOptions) (PushResult, error) {
	base := filepath.Base(path)
	name, err := wal.ParseName(base)
	if err != nil {
		return PushResult{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return PushResult{}, fmt.Errorf("wal-push: %w", localErr(err))
	}
	if !fi.Mode().IsRegular() {
		return PushResult{}, fmt.Errorf("wal-push: %s is not a regular file", path)
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = filepath.Join(filepath.Dir(path), "pitr")
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	p := &pusher{opts: opts, log: zerolog.Ctx(ctx)}
	if err := p.prepareSpool(); err != nil {
		return PushResult{}, err
	}
	p.cleanSpool(ctx)
	// A server that archives has finished recovery: segments prefetched for
	// it are of no further use.
	_ = os.RemoveAll(filepath.Join(opts.SpoolDir, "prefetch"))
	if err := p.ensureMarker(ctx, path, name); err != nil {
		return PushResult{}, err
	}
	if res, ok := p.fromAck(ctx, path, name, fi); ok {
		return res, nil
	}

	var res PushResult
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		res, err = p.pushFile(gctx, path, name)
		return err
	})
	ahead := p.lookAhead(path, name)
	var stored atomic.Int64
	if len(ahead) > 0 {
		var lg errgroup.Group // look-ahead failures never fail this call
		lg.SetLimit(opts.Concurrency - 1)
		for _, other := range ahead {
			lg.Go(func() error {
				if gctx.Err() != nil {
					return nil
				}
				if err := p.pushAhead(gctx, other); err != nil {
					p.log.Warn().Err(err).Str("file", filepath.Base(other)).Msg("look-ahead push failed; archive_command will retry it")
					return nil
				}
				stored.Add(1)
				return nil
			})
		}
		g.Go(func() error { return lg.Wait() })
	}
	err = g.Wait()
	res.LookAhead = int(stored.Load())
	return res, err
}

type pusher struct {
	opts PushOptions
	log  *zerolog.Logger
}

func (p *pusher) ackDir() string { return filepath.Join(p.opts.SpoolDir, "ack") }
func (p *pusher) tmpDir() string { return filepath.Join(p.opts.SpoolDir, "tmp") }

func (p *pusher) prepareSpool() error {
	for _, d := range []string{p.ackDir(), p.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("wal-push: spool: %w", localErr(err))
		}
	}
	return nil
}

// ensureMarker writes the repository marker the first time this spool sees
// the repository, refuses repositories of an unknown format, and checks that
// the repository belongs to the cluster whose file this is (binding an
// unbound one to it). The answer is cached in the spool: later calls cost
// no request until the cache is markerRecheck old.
func (p *pusher) ensureMarker(ctx context.Context, path string, name wal.Name) error {
	cache := filepath.Join(p.opts.SpoolDir, "repo-checked")
	sysid := p.systemID(path, name)
	if fi, err := os.Stat(cache); err == nil && time.Since(fi.ModTime()) < markerRecheck {
		b, _ := os.ReadFile(cache)
		repoID, bound, _ := strings.Cut(string(b), "\n")
		// A .history or .backup file carries no identifier; the spool
		// belongs to this data directory, so its cache speaks for it.
		if repoID == p.opts.RepoID && (bound == sysid || sysid == "" && bound != "") {
			return nil
		}
	}
	r := repo.New(p.opts.Store, p.opts.Codec)
	if err := r.Ensure(ctx, p.opts.Version); err != nil {
		return err
	}
	if sysid != "" {
		if err := r.EnsureCluster(ctx, repo.Cluster{SystemID: sysid, By: "wal-push", Version: p.opts.Version}); err != nil {
			return fmt.Errorf("wal-push %s: %w", name, err)
		}
	}
	if err := writeFileAtomic(cache, []byte(p.opts.RepoID+"\n"+sysid)); err != nil {
		return fmt.Errorf("wal-push: spool: %w", localErr(err))
	}
	return nil
}

// markerRecheck bounds how long a verified binding is trusted without asking
// the repository again (it may have been given to a successor cluster).
const markerRecheck = 10 * time.Minute

// systemID returns the system identifier of the cluster that wrote the
// file: from a segment's own header, else (.history, .backup) from a
// segment beside it in pg_wal. "" when none can be read.
func (p *pusher) systemID(path string, name wal.Name) string {
	if name.Kind != wal.KindSegment && name.Kind != wal.KindPartial {
		dir := filepath.Dir(path)
		entries, _ := os.ReadDir(dir)
		path = ""
		for i := len(entries) - 1; i >= 0 && path == ""; i-- {
			if n, err := wal.ParseName(entries[i].Name()); err == nil && n.Kind == wal.KindSegment && entries[i].Type().IsRegular() {
				path = filepath.Join(dir, entries[i].Name())
			}
		}
		if path == "" {
			return ""
		}
	}
	h, err := wal.ReadSegmentHeader(path)
	if err != nil {
		p.log.Warn().Err(err).Str("file", name.String()).Msg("no cluster identifier in WAL file; repository binding not checked")
		return ""
	}
	return h.SystemID
}

func (p *pusher) fromAck(ctx context.Context, path string, name wal.Name, fi os.FileInfo) (PushResult, bool) {
	ackPath := filepath.Join(p.ackDir(), name.String())
	b, err := os.ReadFile(ackPath)
	if err != nil {
		return PushResult{}, false
	}
	var a ack
	if json.Unmarshal(b, &a) != nil || !sameFile(a, fi) {
		_ = os.Remove(ackPath)
		return PushResult{}, false
	}
	oi, err := p.opts.Store.Stat(ctx, a.Key)
	if err != nil || oi.Size != a.Stored {
		p.log.Warn().Str("segment", name.String()).Msg("acknowledged object not confirmed in repository; pushing again")
		_ = os.Remove(ackPath)
		return PushResult{}, false
	}
	_ = os.Remove(ackPath)
	return PushResult{Name: name.String(), Key: a.Key, Bytes: a.Size, Stored: a.Stored, Acked: true}, true
}

func sameFile(a ack, fi os.FileInfo) bool {
	return a.Size == fi.Size() && a.MtimeNS == fi.ModTime().UnixNano() && a.Inode == inode(fi)
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// lookAhead returns other files PostgreSQL has marked .ready, oldest first,
// at most Concurrency-1 of them and none that already has an ack.
func (p *pusher) lookAhead(path string, self wal.Name) []string {
	if p.opts.Concurrency < 2 {
		return nil
	}
	statusDir := filepath.Join(filepath.Dir(path), "archive_status")
	entries, err := os.ReadDir(statusDir)
	if err != nil {
		return nil
	}
	acks, _ := os.ReadDir(p.ackDir())
	acked := make(map[string]bool, len(acks))
	for _, a := range acks {
		acked[a.Name()] = true
	}
	var names []string
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok || n == self.String() || acked[n] {
			continue
		}
		if _, err := wal.ParseName(n); err != nil {
			continue
		}
		names = append(names, n)
	}
	// PostgreSQL archives timeline history files first, then by name.
	sort.Slice(names, func(i, j int) bool {
		hi, hj := strings.HasSuffix(names[i], ".history"), strings.HasSuffix(names[j], ".history")
		if hi != hj {
			return hi
		}
		return names[i] < names[j]
	})
	if len(names) > p.opts.Concurrency-1 {
		names = names[:p.opts.Concurrency-1]
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(filepath.Dir(path), n)
	}
	return out
}

func (p *pusher) pushAhead(ctx context.Context, path string) error {
	name, err := wal.ParseName(filepath.Base(path))
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	res, err := p.pushFile(ctx, path, name)
	if err != nil {
		return err
	}
	fi2, err := os.Stat(path)
	if err != nil || inode(fi2) != inode(fi) || fi2.Size() != res.Bytes {
		return fmt.Errorf("%s changed while pushing", name)
	}
	oi, err := p.opts.Store.Stat(ctx, res.Key)
	if err != nil {
		return err
	}
	a := ack{Key: res.Key, Size: fi.Size(), MtimeNS: fi.ModTime().UnixNano(), Inode: inode(fi), Stored: oi.Size}
	b, _ := json.Marshal(a)
	return writeFileAtomic(filepath.Join(p.ackDir(), name.String()), b)
}

// pushFile seals the file into a spool temp file (hashing it on the way),
// checks the repository for a stored copy, and uploads if there is none.
func (p *pusher) pushFile(ctx context.Context, path string, name wal.Name) (PushResult, error) {
	start := time.Now()
	res := PushResult{Name: name.String()}
	// Ask the repository for stored copies while sealing: the round trip
	// (and a new connection's TLS handshake) overlaps the compression.
	type listing struct {
		objs []catalog.WALObject
		err  error
	}
	listed := make(chan listing, 1)
	go func() {
		objs, err := wal.ListWAL(ctx, p.opts.Store, name.String())
		listed <- listing{objs, err}
	}()
	src, err := os.Open(path)
	if err != nil {
		return res, fmt.Errorf("wal-push: %w", localErr(err))
	}
	defer src.Close()
	out, err := p.newSealOutput(name)
	if err != nil {
		return res, fmt.Errorf("wal-push: spool: %w", localErr(err))
	}
	putFailed := false
	defer func() {
		out.close()
		if !putFailed { // else the next call aborts the upload recorded, if any
			os.Remove(out.path + uploadRecordSuffix)
		}
	}()
	s, err := p.opts.Codec.Seal(out)
	if err != nil {
		return res, err
	}
	if _, err := io.Copy(s, src); err != nil {
		if errors.Is(err, errLocal) { // the spool's
			return res, fmt.Errorf("wal-push: %w", err)
		}
		return res, fmt.Errorf("wal-push: read %s: %w", path, err)
	}
	if err := s.Close(); err != nil {
		return res, fmt.Errorf("wal-push: seal %s: %w", name, err)
	}
	res.Bytes = s.Size()
	sealed := time.Since(start)
	key, err := catalog.WALKey(name.String(), s.Sum(), p.opts.Codec.Encrypt)
	if err != nil {
		return res, err
	}
	res.Key = key

	l := <-listed
	listedBy := time.Since(start)
	existing, err := l.objs, l.err
	if err != nil {
		return res, fmt.Errorf("wal-push: check repository for %s: %w", name, err)
	}
	for _, o := range existing {
		if o.SHA256 == s.Sum() {
			res.Existed, res.Key = true, o.Key
			p.log.Info().Str("segment", name.String()).Msg("wal already archived with same content")
			return res, nil
		}
	}
	if len(existing) > 0 {
		return res, fmt.Errorf("wal-push: %s %w (stored sha256 %.16s, this file %.16s); refusing to overwrite", name, wal.ErrConflict, existing[0].SHA256, s.Sum())
	}

	body, stored, err := out.body()
	if err != nil {
		return res, err
	}
	putCtx := storage.WithUploadStarted(ctx, func(u storage.Upload) { p.recordUpload(out.path, u) })
	existed, err := repo.New(p.opts.Store, p.opts.Codec).CreateObject(putCtx, key, body)
	if err != nil {
		putFailed = true
		return res, fmt.Errorf("wal-push: %w", err)
	}
	if existed { // stored meanwhile by another push of the same content
		res.Existed = true
		p.log.Info().Str("segment", name.String()).Msg("wal already archived with same content")
		return res, nil
	}
	res.Stored = stored
	took := time.Since(start)
	ev := p.log.Info()
	if took > slowRequest { // with where the time went
		ev = p.log.Warn().Dur("sealed_after", sealed.Round(time.Millisecond)).Dur("listed_after", listedBy.Round(time.Millisecond))
	}
	ev.Str("segment", name.String()).Int64("bytes", res.Bytes).Int64("stored", stored).
		Dur("took", took.Round(time.Millisecond)).Msg("wal pushed")
	return res, nil
}

// writeFileAtomic replaces path with b. The temp file's name is unique
// even within one process: the daemon runs several pushes at once.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// errLocal marks failures of this host's file system that happen before
// anything is sent to the store: the WAL file cannot be read, or the spool
// cannot be written. Another process (wal-push itself rather than the
// daemon, which may run as another user or in a read-only file system) may
// well succeed where this one failed.
var errLocal = errors.New("local file system")

type localError struct{ err error }

func (e localError) Error() string   { return e.err.Error() }
func (e localError) Unwrap() []error { return []error{e.err, errLocal} }
func localErr(err error) error       { return localError{err} }
