package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
)

// Options configures Run.
type Options struct {
	// Backup limits the run to one backup: its parts and the WAL on its
	// chains (all the WAL with WAL). "" is every backup.
	Backup string
	// What to verify; all false is everything (backups, WAL, dumps and
	// file snapshots). Backup implies Backups.
	Backups, WAL, Dumps, Files bool
	// Full re-reads objects the state file records as verified.
	Full bool
	// Subset reads only the objects it selects (presence and size checks
	// still cover all).
	Subset Subset
	// StateFile records what was verified (see state.go); "" keeps none,
	// so every run reads everything.
	StateFile string
	// IndexCacheDir is the local pack index cache of file snapshots
	// (repo.Repo.LoadChunkIndexCached); "" for none.
	IndexCacheDir string
	Workers       int            // objects read at once; default 4
	Progress      progress.Meter // stored bytes read; nil shows nothing
	Now           func() time.Time
}

// Result is what a run found.
type Result struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Objects and Bytes count the objects read and checked, and their
	// stored bytes.
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// Skipped objects were verified by an earlier run (the state file);
	// Unselected ones are outside Subset; Sealed ones are encrypted and
	// were not decrypted for want of the identity (checked by size).
	Skipped    int64 `json:"skipped"`
	Unselected int64 `json:"unselected"`
	Sealed     int64 `json:"sealed"`
	// Decrypted: the identity was at hand, so contents were checked;
	// without it, presence, sizes and the stored checksums of packs and backup parts only.
	Decrypted bool   `json:"decrypted"`
	Full      bool   `json:"full"`
	Subset    string `json:"subset"`
	// Problems, one line each, naming the object (its key) or the WAL.
	Problems []string `json:"problems"`
}

// OK says whether the run found no problem.
func (r *Result) OK() bool { return len(r.Problems) == 0 }

// Report returns the run as a catalog report (kind verify).
func (r *Result) Report() *catalog.Report {
	return &catalog.Report{Kind: catalog.ReportVerify, Started: r.Started, Finished: r.Finished, OK: r.OK(),
		Problems: r.Problems, Summary: r.Summary(), Objects: r.Objects, Bytes: r.Bytes, Decrypted: r.Decrypted, Full: r.Full}
}

// Summary is the run's one-line result.
func (r *Result) Summary() string {
	if !r.OK() {
		n := len(r.Problems)
		if n == 1 {
			return "verify: 1 problem"
		}
		return fmt.Sprintf("verify: %d problems", n)
	}
	s := fmt.Sprintf("verify ok: %d objects (%d bytes) read", r.Objects, r.Bytes)
	if r.Skipped > 0 {
		s += fmt.Sprintf(", %d verified before", r.Skipped)
	}
	if r.Unselected > 0 {
		s += fmt.Sprintf(", %d outside subset %s", r.Unselected, r.Subset)
	}
	if r.Sealed > 0 {
		s += fmt.Sprintf(", %d encrypted objects not opened", r.Sealed)
	}
	return s
}

// NoIdentity is the line a run without the identity reports.
const NoIdentity = "no identity: checked presence, sizes and the checksums of packs and backup parts; contents not decrypted"

// errVanished: an object listed was deleted before it was read (a
// concurrent pitr retain, or wal-receive removing the chunks of a segment
// stored whole). What entries name is checked against the listing, so this
// is no problem.
var errVanished = errors.New("deleted since the listing")

// task is one object to read.
type task struct {
	obj   storage.ObjectInfo
	level string
	read  func(ctx context.Context) error // a problem: an error naming the object
}

type verifier struct {
	opts    Options
	r       *repo.Repo
	st      storage.Storage
	ids     bool // the codec holds identities
	listing map[string]storage.ObjectInfo
	state   *stateFile
	res     *Result

	mu    sync.Mutex
	tasks []task
	sums  map[string]string // chunk ID -> plaintext SHA-256, from the manifests read
}

// Run verifies the repository r (see the package documentation). It
// returns an error only when it could not do its work (the store
// unreachable, ctx done); what it found is in Result.Problems. It writes
// nothing to the repository; the caller saves the report.
func Run(ctx context.Context, r *repo.Repo, opts Options) (*Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Backup != "" {
		opts.Backups = true
	}
	if !opts.Backups && !opts.WAL && !opts.Dumps && !opts.Files {
		opts.Backups, opts.WAL, opts.Dumps, opts.Files = true, true, true, true
	}
	codec := r.Codec()
	if codec == nil {
		return nil, errors.New("verify: the repository has no codec")
	}
	v := &verifier{opts: opts, ids: codec != nil && len(codec.Identities) > 0, sums: map[string]string{},
		res: &Result{Started: opts.Now().UTC(), Full: opts.Full, Subset: opts.Subset.String(), Problems: []string{}}}
	v.st = &meteredStore{Storage: r.Store(), m: opts.Progress}
	v.r = r.WithStore(v.st)
	log := zerolog.Ctx(ctx)
	state, err := loadState(opts.StateFile)
	if err != nil {
		log.Warn().Err(err).Msg("verify state ignored")
	}
	v.state = state
	if err := v.run(ctx); err != nil {
		return nil, err
	}
	for key := range v.state.Objects {
		if _, ok := v.listing[key]; !ok {
			delete(v.state.Objects, key) // deleted from the repository since
		}
	}
	if err := v.state.save(opts.StateFile, opts.Now()); err != nil {
		log.Warn().Err(err).Msg("verify state not saved: the next run reads everything again")
	}
	// Contents were checked: with the identity, or in a repository that
	// does not encrypt and held nothing encrypted.
	v.res.Decrypted = v.ids || !codec.Encrypt && v.res.Sealed == 0
	sort.Strings(v.res.Problems)
	v.res.Finished = opts.Now().UTC()
	return v.res, nil
}

func (v *verifier) problem(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.res.Problems = append(v.res.Problems, fmt.Sprintf(format, args...))
}

// verified says whether the state records o as verified at level.
func (v *verifier) verified(o storage.ObjectInfo, level string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.state.verified(o, level)
}

// count adds one to a counter of the result.
func (v *verifier) count(n *int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	*n++
}

func (v *verifier) add(t task) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tasks = append(v.tasks, t)
}

func (v *verifier) run(ctx context.Context) error {
	if err := v.list(ctx); err != nil {
		return err
	}
	if v.opts.Backups || v.opts.WAL {
		if err := v.walAndBackups(ctx); err != nil {
			return err
		}
	}
	if v.opts.Dumps {
		if err := v.dumps(ctx); err != nil {
			return err
		}
	}
	if v.opts.Files {
		if err := v.files(ctx); err != nil {
			return err
		}
	}
	return v.readAll(ctx, v.tasks)
}

// list lists the repository's objects once (presence and sizes).
func (v *verifier) list(ctx context.Context) error {
	v.listing = map[string]storage.ObjectInfo{}
	for _, prefix := range []string{"wal/", "backups/", "dumps/", catalog.FilesPrefix} {
		err := v.st.List(ctx, prefix, func(o storage.ObjectInfo) error {
			v.listing[o.Key] = o
			return nil
		})
		if err != nil {
			return fmt.Errorf("verify: list %s: %w", prefix, err)
		}
	}
	return nil
}

// readAll reads the tasks the state and the subset select, on Workers
// goroutines, and records what passed.
func (v *verifier) readAll(ctx context.Context, tasks []task) error {
	var todo []task
	var total int64
	for _, t := range tasks {
		switch {
		case !v.opts.Subset.Has(t.obj.Key):
			v.res.Unselected++
		case !v.opts.Full && v.verified(t.obj, t.level):
			v.res.Skipped++
		default:
			todo = append(todo, t)
			total += t.obj.Size
		}
	}
	progress.SetTotal(v.opts.Progress, v.res.Bytes+total) // manifests were read already
	defer progress.Done(v.opts.Progress)
	g, gctx := errgroup.WithContext(metered(ctx))
	g.SetLimit(v.opts.Workers)
	for _, t := range todo {
		g.Go(func() error {
			err := t.read(gctx)
			if err := gctx.Err(); err != nil {
				return err
			}
			if errors.Is(err, errVanished) {
				zerolog.Ctx(ctx).Debug().Str("key", t.obj.Key).Msg("deleted since the listing: not verified")
				return nil
			}
			v.mu.Lock()
			defer v.mu.Unlock()
			v.res.Objects++
			v.res.Bytes += t.obj.Size
			if err != nil {
				v.res.Problems = append(v.res.Problems, oneLine(err.Error()))
				delete(v.state.Objects, t.obj.Key) // damaged since it was verified: every run names it
				return nil
			}
			v.state.record(t.obj, t.level)
			return nil
		})
	}
	return g.Wait()
}

// canOpen says whether an object sealed so can be read here.
func (v *verifier) canOpen(encrypted bool) bool { return v.ids || !encrypted }

// sealed queues the read of a sealed object key (listed as o): its
// plaintext checked against sha and, when known (>= 0), its size. An
// encrypted object without the identity is checked by size only, which
// the caller did.
func (v *verifier) sealed(o storage.ObjectInfo, encrypted bool, sha string, plainBytes int64) {
	v.sealedSums(o, encrypted, envelope.Sums{SHA256: sha}, plainBytes)
}

// sealedSums is sealed for an object recording other sums (a backup
// part, see repo.PutLarge). Without the identity, an encrypted object
// that records the SHA-256 of its stored bytes has those checked.
func (v *verifier) sealedSums(o storage.ObjectInfo, encrypted bool, want envelope.Sums, plainBytes int64) {
	if !v.canOpen(encrypted) {
		if want.StoredSHA256 != "" {
			v.add(task{obj: o, level: levelStored, read: func(ctx context.Context) error {
				return v.readStored(ctx, o.Key, want.StoredSHA256)
			}})
			return
		}
		v.count(&v.res.Sealed)
		return
	}
	v.add(task{obj: o, level: levelContent, read: func(ctx context.Context) error {
		return v.readSealed(ctx, o.Key, encrypted, want, plainBytes)
	}})
}

// readSealed reads one sealed object to its end as a stream, discarding
// the plaintext.
func (v *verifier) readSealed(ctx context.Context, key string, encrypted bool, want envelope.Sums, plainBytes int64) error {
	rc, err := v.get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	body := &transportReader{r: rc}
	pr, err := v.r.Codec().OpenSums(body, encrypted, want)
	if err != nil {
		return describe(key, body, err)
	}
	n, err := io.Copy(io.Discard, pr)
	pr.Close()
	if err != nil {
		return describe(key, body, err)
	}
	if plainBytes >= 0 && n != plainBytes {
		return fmt.Errorf("%s: %d bytes of plaintext, %d recorded", key, n, plainBytes)
	}
	return nil
}

// get opens an object for reading; errVanished when it is gone.
func (v *verifier) get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := v.st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, errVanished
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return rc, nil
}

// readStored reads one stored object and checks the SHA-256 of its bytes.
func (v *verifier) readStored(ctx context.Context, key, want string) error {
	rc, err := v.get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return fmt.Errorf("%s: download failed: %w", key, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != want {
		return fmt.Errorf("%s: sha256 mismatch", key)
	}
	return nil
}

// describe names what is wrong with an object that failed to open.
func describe(key string, body *transportReader, err error) error {
	switch {
	case body.err != nil:
		return fmt.Errorf("%s: download failed: %w", key, body.err)
	case errors.Is(err, envelope.ErrChecksum):
		return fmt.Errorf("%s: sha256 mismatch", key)
	case errors.Is(err, crypto.ErrWrongKey):
		return fmt.Errorf("%s: %w", key, err)
	}
	return fmt.Errorf("%s: %w", key, err)
}

// transportReader remembers a read error of the store's body, to tell a
// broken download from stored bytes that do not decode.
type transportReader struct {
	r   io.Reader
	err error
}

func (t *transportReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// present checks that key is listed with stored bytes (when > 0) and
// returns its listing; ok false after naming the problem.
func (v *verifier) present(key, what string, stored int64) (storage.ObjectInfo, bool) {
	o, ok := v.listing[key]
	switch {
	case !ok:
		v.problem("%s: missing (%s)", key, what)
		return o, false
	case stored > 0 && o.Size != stored:
		v.problem("%s: %d bytes stored, %s records %d", key, o.Size, what, stored)
		return o, false
	}
	return o, true
}

func (v *verifier) dumps(ctx context.Context) error {
	ds, damaged, err := v.r.ListDumps(ctx, "")
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, d := range damaged {
		key, _ := catalog.DumpEntryKey(d.Database, d.ID)
		v.problem("%s: damaged entry: %s", key, d.Reason)
	}
	for _, d := range ds {
		want, err := catalog.DumpObjectKey(d.Database, d.ID, d.Encrypted)
		entry, _ := catalog.DumpEntryKey(d.Database, d.ID)
		if err != nil || d.Key != want {
			v.problem("%s: names archive %q, not its own %s", entry, d.Key, want)
			continue
		}
		if o, ok := v.present(d.Key, "dump "+d.ID+" of "+d.Database, d.Stored); ok {
			v.sealed(o, d.Encrypted, d.SHA256, d.Bytes)
		}
	}
	return nil
}

// oneLine keeps a problem on one line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// meteredStore passes reads through, telling the meter the bytes read.
type meteredStore struct {
	storage.Storage
	m progress.Meter
}

// meterKey marks the context of the reads a meteredStore reports: the
// objects verified, not the entries and indexes read to plan the run.
type meterKey struct{}

func metered(ctx context.Context) context.Context { return context.WithValue(ctx, meterKey{}, true) }

func (s *meteredStore) on(ctx context.Context) bool {
	return s.m != nil && ctx.Value(meterKey{}) != nil
}

func (s *meteredStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Storage.Get(ctx, key)
	if err != nil || !s.on(ctx) {
		return rc, err
	}
	return meteredBody{rc, s.m}, nil
}

func (s *meteredStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := s.Storage.GetRange(ctx, key, offset, length)
	if err != nil || !s.on(ctx) {
		return rc, err
	}
	return meteredBody{rc, s.m}, nil
}

// Unwrap reveals the store underneath (storage.UploadsOf, LockerOf).
func (s *meteredStore) Unwrap() storage.Storage { return s.Storage }

type meteredBody struct {
	io.ReadCloser
	m progress.Meter
}

func (b meteredBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.m.Add(int64(n))
	return n, err
}
