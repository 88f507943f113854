package copy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/retry"
)

// Options configures Run.
type Options struct {
	Source storage.Storage // the repository copied from; only read
	// Target is the repository copied to. With DryRun it may be nil: a
	// target that does not exist yet, so everything is behind.
	Target storage.Storage
	DryRun bool // count what the target lacks, change nothing
	// Verify compares the content (SHA-256) of objects the target holds
	// already, not only their size: it reads every object on both sides.
	Verify  bool
	Workers int          // objects copied at once; default 4
	Retry   retry.Policy // for each storage call and each object's copy
	Now     func() time.Time
	// ProgressEvery is how often a long copy logs what it did so far;
	// default 30s.
	ProgressEvery time.Duration
	// Progress hears the bytes copied, against those the target lacks;
	// nil shows nothing.
	Progress progress.Meter
}

// Kind groups objects for the counts: by their top-level prefix.
type Kind string

// Kinds of objects.
const (
	KindWAL     Kind = "wal"     // wal/: segments, stream chunks, histories
	KindBackups Kind = "backups" // backups/: parts, reservations, entries
	KindDumps   Kind = "dumps"   // dumps/
	KindFiles   Kind = "files"   // files/: packs, indexes, manifests, snapshot entries
	KindOther   Kind = "other"   // the marker, cluster bindings, anything else
)

// Kinds lists the kinds in the order reports show them.
var Kinds = []Kind{KindWAL, KindBackups, KindDumps, KindFiles, KindOther}

func kindOf(key string) Kind {
	top, _, _ := strings.Cut(key, "/")
	switch top {
	case "wal":
		return KindWAL
	case "backups":
		return KindBackups
	case "dumps":
		return KindDumps
	case "files":
		return KindFiles
	}
	return KindOther
}

// Tally counts objects and their stored bytes.
type Tally struct {
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

func (t *Tally) add(size int64) { t.Objects++; t.Bytes += size }

// Result says what Run did, or with DryRun would do, per kind.
type Result struct {
	Copied   map[Kind]Tally // stored in the target by this run (Repaired included)
	Skipped  map[Kind]Tally // in the target already, matching
	Repaired map[Kind]Tally // in the target but damaged: kept under quarantine/, copied again
	Behind   map[Kind]Tally // DryRun: missing in the target
	Damaged  map[Kind]Tally // DryRun: in the target but differing (size; content with Verify)
	Vanished int64          // source objects deleted while the copy ran (left out)
	Duration time.Duration
}

// Total sums a tally over the kinds.
func Total(m map[Kind]Tally) Tally {
	var t Tally
	for _, v := range m {
		t.Objects += v.Objects
		t.Bytes += v.Bytes
	}
	return t
}

// QuarantinePrefix holds, in the target, the bytes of objects found to
// differ from the source before they were copied again.
const QuarantinePrefix = "quarantine/"

// largeObject is the size from which objects are copied one at a time: an
// S3 upload holds several part buffers (16 MiB each by default) while it
// runs, so Workers large uploads at once would hold Workers times that.
const largeObject = 64 << 20

// ErrOtherRepository is wrapped when the target is another repository:
// another format, or bound to a cluster the source does not know.
var ErrOtherRepository = errors.New("target is another repository")

// errVanished: the source object was deleted after it was listed.
var errVanished = errors.New("deleted from the source while copying")

type copier struct {
	opts     Options
	src, dst storage.Storage
	now      time.Time

	large chan struct{} // one object of largeObject bytes or more at a time

	mu       sync.Mutex
	res      *Result
	inTarget map[string]bool // keys the target holds with the source's bytes (as far as checked)
}

// Run copies to opts.Target every object of opts.Source it lacks, entries
// last (see the package documentation). It returns what it did; on error
// the result counts what was done before it.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &copier{opts: opts, now: opts.Now().UTC(), inTarget: map[string]bool{}, large: make(chan struct{}, 1), res: &Result{
		Copied: map[Kind]Tally{}, Skipped: map[Kind]Tally{}, Repaired: map[Kind]Tally{},
		Behind: map[Kind]Tally{}, Damaged: map[Kind]Tally{},
	}}
	c.src = retry.New(opts.Source, opts.Retry)
	if opts.Target != nil {
		c.dst = retry.New(opts.Target, opts.Retry)
	} else if !opts.DryRun {
		return nil, errors.New("copy: no target")
	}
	stop := c.progress(ctx)
	err := c.run(ctx)
	stop()
	c.res.Duration = opts.Now().Sub(c.now)
	if err != nil {
		return c.res, fmt.Errorf("copy: %w", err)
	}
	return c.res, nil
}

// progress logs the counts so far every ProgressEvery until stopped.
func (c *copier) progress(ctx context.Context) (stop func()) {
	every := c.opts.ProgressEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			c.mu.Lock()
			cp, sk, bh := Total(c.res.Copied), Total(c.res.Skipped), Total(c.res.Behind)
			c.mu.Unlock()
			zerolog.Ctx(ctx).Info().Int64("objects", cp.Objects).Int64("bytes", cp.Bytes).Int64("skipped", sk.Objects).
				Int64("behind", bh.Objects).Msg("copy progress")
		}
	}()
	return func() { close(done); <-finished }
}

func (c *copier) run(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	marker, err := c.checkTarget(ctx)
	if err != nil {
		return err
	}
	// Entries first, then everything else: whatever a listed entry needs
	// was stored before it, so the second listing holds it.
	entries, err := c.list(ctx, true)
	if err != nil {
		return err
	}
	objects, err := c.list(ctx, false)
	if err != nil {
		return err
	}
	have := map[string]int64{}
	if c.dst != nil {
		err := c.dst.List(ctx, "", func(o storage.ObjectInfo) error { have[o.Key] = o.Size; return nil })
		if err != nil {
			return fmt.Errorf("list the target: %w", err)
		}
	}
	if err := c.ensureMarker(ctx, marker); err != nil {
		return err
	}
	log.Debug().Int("entries", len(entries)).Int("objects", len(objects)).Int("target_objects", len(have)).Msg("listed both repositories")
	progress.SetTotal(c.opts.Progress, behind(have, objects, entries))
	// A streamed segment's seal counts as the segment for every reader,
	// so it goes after every other object, its chunks included: a copy
	// cut short never leaves a seal whose chunks are missing.
	var seals []storage.ObjectInfo
	rest := objects[:0:0]
	for _, o := range objects {
		if _, ok := catalog.ParseSealKey(o.Key); ok {
			seals = append(seals, o)
		} else {
			rest = append(rest, o)
		}
	}
	if err := c.each(ctx, rest, have); err != nil {
		return err
	}
	if err := c.each(ctx, seals, have); err != nil {
		return err
	}
	held, err := c.entries(ctx, entries, have)
	if err != nil {
		return err
	}
	for _, k := range Kinds {
		t, s := c.res.Copied[k], c.res.Skipped[k]
		if c.opts.DryRun {
			t = c.res.Behind[k]
		}
		if t.Objects+s.Objects > 0 {
			log.Info().Str("kind", string(k)).Int64("objects", t.Objects).Int64("bytes", t.Bytes).
				Int64("skipped", s.Objects).Int64("repaired", c.res.Repaired[k].Objects).Int64("damaged", c.res.Damaged[k].Objects).
				Bool("dry_run", c.opts.DryRun).Msg("copy by kind")
		}
	}
	if len(held) > 0 {
		return fmt.Errorf("%d entries not copied (%s): fix them in the source, or remove them there", len(held), strings.Join(held[:min(3, len(held))], "; "))
	}
	return nil
}

// behind is the bytes of the objects the target lacks or holds at another
// size: about what Run copies.
func behind(have map[string]int64, lists ...[]storage.ObjectInfo) (n int64) {
	for _, l := range lists {
		for _, o := range l {
			if size, ok := have[o.Key]; !ok || size != o.Size {
				n += o.Size
			}
		}
	}
	return n
}

// checkTarget reads the source's marker and refuses a target that is
// another repository, before anything is written.
func (c *copier) checkTarget(ctx context.Context) ([]byte, error) {
	marker, err := readSmall(ctx, c.src, catalog.MarkerKey)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("%w: the source has no %s", catalog.ErrNoRepository, catalog.MarkerKey)
	}
	if err != nil {
		return nil, fmt.Errorf("read the source's marker: %w", err)
	}
	if err := catalog.CheckMarker(marker); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if c.dst == nil {
		return marker, nil
	}
	theirs, err := readSmall(ctx, c.dst, catalog.MarkerKey)
	switch {
	case errors.Is(err, storage.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read the target's marker: %w", err)
	default:
		var a, b catalog.Marker
		if json.Unmarshal(marker, &a) != nil || json.Unmarshal(theirs, &b) != nil || a.Format != b.Format {
			return nil, fmt.Errorf("%w: its marker %s is not of the source's format %d", ErrOtherRepository, catalog.MarkerKey, a.Format)
		}
	}
	known := map[string]bool{}
	if err := c.src.List(ctx, catalog.ClustersPrefix, func(o storage.ObjectInfo) error { known[o.Key] = true; return nil }); err != nil {
		return nil, fmt.Errorf("list the source's cluster bindings: %w", err)
	}
	err = c.dst.List(ctx, catalog.ClustersPrefix, func(o storage.ObjectInfo) error {
		if b, ok := catalog.ParseBindingKey(o.Key); ok && !known[o.Key] {
			return fmt.Errorf("%w: it belongs to cluster %s, which the source does not know", ErrOtherRepository, b.SystemID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	return marker, nil
}

// ensureMarker creates the target's marker, a copy of the source's.
func (c *copier) ensureMarker(ctx context.Context, marker []byte) error {
	if c.dst != nil {
		_, err := c.dst.Stat(ctx, catalog.MarkerKey)
		if err == nil {
			c.tally(c.res.Skipped, catalog.MarkerKey, int64(len(marker)), true)
			return nil
		}
		if !errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("stat the target's marker: %w", err)
		}
	}
	if c.opts.DryRun {
		c.tally(c.res.Behind, catalog.MarkerKey, int64(len(marker)), true)
		return nil
	}
	err := c.dst.Create(ctx, catalog.MarkerKey, bytes.NewReader(marker))
	if err != nil && !errors.Is(err, storage.ErrExist) {
		return fmt.Errorf("create the target's marker: %w", err)
	}
	if errors.Is(err, storage.ErrExist) { // another copy just made it
		theirs, err := readSmall(ctx, c.dst, catalog.MarkerKey)
		if err != nil {
			return fmt.Errorf("read the target's marker: %w", err)
		}
		if err := catalog.CheckMarker(theirs); err != nil {
			return fmt.Errorf("target: %w", err)
		}
		return nil
	}
	c.tally(c.res.Copied, catalog.MarkerKey, int64(len(marker)), true)
	return nil
}

func isEntry(key string) bool {
	if _, ok := catalog.ParseBackupEntryKey(key); ok {
		return true
	}
	if _, _, ok := catalog.ParseDumpEntryKey(key); ok {
		return true
	}
	_, _, ok := catalog.ParseSnapshotEntryKey(key)
	return ok
}

// list lists the source's entries (entries true) or every other object
// but the marker.
func (c *copier) list(ctx context.Context, entries bool) ([]storage.ObjectInfo, error) {
	var out []storage.ObjectInfo
	prefixes := []string{""}
	if entries {
		prefixes = []string{catalog.BackupsPrefix, catalog.DumpsPrefix, catalog.SnapshotsPrefix}
	}
	for _, p := range prefixes {
		err := c.src.List(ctx, p, func(o storage.ObjectInfo) error {
			// A copy's quarantine/ is its own, not the repository's: a
			// copy made from a copy leaves it behind.
			if isEntry(o.Key) == entries && o.Key != catalog.MarkerKey && !strings.HasPrefix(o.Key, QuarantinePrefix) {
				out = append(out, o)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list the source: %w", err)
		}
	}
	return out, nil
}

// each brings every object to the target, Workers at once; the first
// error stops the rest.
func (c *copier) each(ctx context.Context, objs []storage.ObjectInfo, have map[string]int64) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Workers)
	for _, o := range objs {
		if gctx.Err() != nil {
			break
		}
		size, present := have[o.Key]
		g.Go(func() error {
			if o.Size >= largeObject { // base backup parts: bound the upload buffers held at once
				select {
				case c.large <- struct{}{}:
				case <-gctx.Done():
					return gctx.Err()
				}
				defer func() { <-c.large }()
			}
			return c.one(gctx, o, size, present)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// entries copies the entries whose objects are all in the target; it
// returns those it held back, and why.
func (c *copier) entries(ctx context.Context, entries []storage.ObjectInfo, have map[string]int64) ([]string, error) {
	var ready []storage.ObjectInfo
	var held []string
	log := zerolog.Ctx(ctx)
	for _, e := range entries {
		data, err := readSmall(ctx, c.src, e.Key)
		if errors.Is(err, storage.ErrNotExist) {
			c.vanished(ctx, e.Key)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read entry %s: %w", e.Key, err)
		}
		refs, err := entryRefs(e.Key, data)
		if err != nil {
			log.Warn().Str("key", e.Key).Err(err).Msg("entry not copied: damaged in the source")
			held = append(held, e.Key+": damaged in the source: "+err.Error())
			continue
		}
		missing := ""
		for _, r := range refs {
			if !c.has(r) {
				missing = r
				break
			}
		}
		if missing != "" {
			log.Warn().Str("key", e.Key).Str("missing", missing).Msg("entry not copied: an object it needs is not in the target")
			held = append(held, e.Key+": "+missing+" is missing")
			continue
		}
		ready = append(ready, e)
	}
	return held, c.each(ctx, ready, have)
}

// entryRefs lists the objects an entry names.
func entryRefs(key string, data []byte) ([]string, error) {
	if _, ok := catalog.ParseBackupEntryKey(key); ok {
		b, err := catalog.UnmarshalBackup(data)
		if err != nil {
			return nil, err
		}
		var refs []string
		for _, p := range b.Parts {
			refs = append(refs, p.Key)
		}
		return refs, nil
	}
	if _, _, ok := catalog.ParseDumpEntryKey(key); ok {
		d, err := catalog.UnmarshalDump(data)
		if err != nil {
			return nil, err
		}
		return []string{d.Key}, nil
	}
	s, err := catalog.UnmarshalSnapshot(data)
	if err != nil {
		return nil, err
	}
	return []string{s.Manifest.Key}, nil
}

func (c *copier) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inTarget[key]
}

// tally counts key in m; inTarget: the target now holds it with the
// source's bytes (or, with DryRun, would).
func (c *copier) tally(m map[Kind]Tally, key string, size int64, inTarget bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := m[kindOf(key)]
	t.add(size)
	m[kindOf(key)] = t
	if inTarget {
		c.inTarget[key] = true
	}
}

func (c *copier) vanished(ctx context.Context, key string) {
	zerolog.Ctx(ctx).Debug().Str("key", key).Msg("object deleted from the source while copying; left out")
	c.mu.Lock()
	c.res.Vanished++
	c.mu.Unlock()
}

// one brings one object to the target: skipped when the target holds it
// (same size; same content with Verify), copied when absent, repaired
// when it differs.
func (c *copier) one(ctx context.Context, o storage.ObjectInfo, size int64, present bool) error {
	log := zerolog.Ctx(ctx)
	var srcSum string
	if present && size == o.Size {
		if !c.opts.Verify {
			c.tally(c.res.Skipped, o.Key, o.Size, true)
			return nil
		}
		s, err := c.hash(ctx, c.src, o.Key)
		if errors.Is(err, storage.ErrNotExist) {
			c.vanished(ctx, o.Key)
			return nil
		}
		if err != nil {
			return err
		}
		t, err := c.hash(ctx, c.dst, o.Key)
		if err != nil && !errors.Is(err, storage.ErrNotExist) {
			return err
		}
		if err == nil && t == s {
			c.tally(c.res.Skipped, o.Key, o.Size, true)
			return nil
		}
		srcSum = s
	}
	if present {
		log.Warn().Str("key", o.Key).Int64("bytes", o.Size).Int64("target_bytes", size).Msg("object in the target differs from the source")
		if c.opts.DryRun {
			c.tally(c.res.Damaged, o.Key, o.Size, true)
			return nil
		}
		return c.repair(ctx, o, srcSum)
	}
	if c.opts.DryRun {
		c.tally(c.res.Behind, o.Key, o.Size, true)
		return nil
	}
	n, differs, err := c.copyNew(ctx, o.Key)
	switch {
	case errors.Is(err, errVanished):
		c.vanished(ctx, o.Key)
		return nil
	case err != nil:
		return err
	case differs: // another writer's object appeared under the key
		log.Warn().Str("key", o.Key).Msg("object in the target differs from the source")
		return c.repair(ctx, o, "")
	}
	log.Debug().Str("key", o.Key).Int64("bytes", n).Msg("object copied")
	c.tally(c.res.Copied, o.Key, n, true)
	return nil
}

// copyNew copies key create-only and checks the target's bytes against
// the source's. differs: the target had the key already (a create whose
// answer was lost and was retried finds its own object, which matches),
// with other bytes.
func (c *copier) copyNew(ctx context.Context, key string) (n int64, differs bool, err error) {
	err = retry.Do(ctx, c.opts.Retry, func(ctx context.Context) error {
		var existed bool
		var sum string
		var err error
		n, sum, existed, err = transfer(ctx, c.src, c.dst, key, key, c.opts.Progress)
		if err != nil {
			return retryable(err)
		}
		got, err := c.hash(ctx, c.dst, key)
		if err != nil {
			return retryable(err)
		}
		switch {
		case got == sum:
			differs = false
		case existed:
			differs = true
		default:
			return retry.Permanent(fmt.Errorf("copy %s: the target holds other bytes than were sent", key))
		}
		return nil
	}, nil)
	return n, differs, err
}

// repair keeps the target's differing object under quarantine/, deletes
// it and copies it again. srcSum is the source's SHA-256 when known.
func (c *copier) repair(ctx context.Context, o storage.ObjectInfo, srcSum string) error {
	log := zerolog.Ctx(ctx)
	if srcSum == "" {
		s, err := c.hash(ctx, c.src, o.Key)
		if errors.Is(err, storage.ErrNotExist) {
			c.vanished(ctx, o.Key)
			return nil
		}
		if err != nil {
			return err
		}
		srcSum = s
	}
	if named, ok := namedSum(o.Key); ok && named != srcSum {
		return fmt.Errorf("%s differs between source and target, and the source's does not match its key: damaged in the source; the target's is left as it is", o.Key)
	}
	q := QuarantinePrefix + c.now.Format("20060102T150405Z") + "/" + o.Key
	err := retry.Do(ctx, c.opts.Retry, func(ctx context.Context) error {
		_, sum, existed, err := transfer(ctx, c.dst, c.dst, o.Key, q, nil)
		if errors.Is(err, errVanished) {
			return nil // gone already (a repair killed after its delete)
		}
		if err != nil {
			return retryable(err)
		}
		if existed {
			return nil // kept by an earlier attempt
		}
		got, err := c.hash(ctx, c.dst, q)
		if err != nil {
			return retryable(err)
		}
		if got != sum {
			return retry.Permanent(fmt.Errorf("keep %s under %s: the stored bytes differ from those sent", o.Key, q))
		}
		return nil
	}, nil)
	if err != nil {
		return fmt.Errorf("keep damaged %s: %w", o.Key, err)
	}
	if err := c.dst.Delete(ctx, o.Key); err != nil {
		return fmt.Errorf("delete damaged %s from the target: %w", o.Key, err)
	}
	n, differs, err := c.copyNew(ctx, o.Key)
	if err == nil && differs {
		err = fmt.Errorf("copy %s: another writer stored other bytes under it", o.Key)
	}
	if err != nil {
		return err
	}
	log.Warn().Str("key", o.Key).Str("kept_as", q).Int64("bytes", n).Msg("damaged object in the target copied again")
	c.tally(c.res.Copied, o.Key, n, true)
	c.tally(c.res.Repaired, o.Key, n, true)
	return nil
}

// namedSum is the SHA-256 of the stored bytes a key names, for keys that
// name one (packs, pack indexes).
func namedSum(key string) (string, bool) {
	if s, ok := catalog.ParsePackKey(key); ok {
		return s, true
	}
	return catalog.ParseIndexKey(key)
}

// transfer streams fromKey of from into toKey of to, create-only, and
// returns the bytes and SHA-256 of the source object. existed: to held
// toKey already (storage.ErrExist), and was left as it was. m (nil: none)
// hears the bytes read.
func transfer(ctx context.Context, from, to storage.Storage, fromKey, toKey string, m progress.Meter) (n int64, sum string, existed bool, err error) {
	rc, err := from.Get(ctx, fromKey)
	if errors.Is(err, storage.ErrNotExist) {
		return 0, "", false, errVanished
	}
	if err != nil {
		return 0, "", false, err
	}
	defer rc.Close()
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(progress.Reader(m, rc), h)}
	err = to.Create(ctx, toKey, cr)
	if errors.Is(err, storage.ErrExist) {
		// The rest of the source, for its hash.
		if _, err := io.Copy(io.Discard, cr); err != nil {
			return 0, "", false, fmt.Errorf("read %s: %w", fromKey, err)
		}
		existed, err = true, nil
	}
	if err != nil {
		return 0, "", false, err
	}
	return cr.n, hex.EncodeToString(h.Sum(nil)), existed, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// hash returns the SHA-256 of key's stored bytes, retrying a read that
// breaks.
func (c *copier) hash(ctx context.Context, st storage.Storage, key string) (string, error) {
	var sum string
	err := retry.Do(ctx, c.opts.Retry, func(ctx context.Context) error {
		rc, err := st.Get(ctx, key)
		if err != nil {
			return retryable(err)
		}
		defer rc.Close()
		h := sha256.New()
		if _, err := io.Copy(h, rc); err != nil {
			return retryable(fmt.Errorf("read %s: %w", key, err))
		}
		sum = hex.EncodeToString(h.Sum(nil))
		return nil
	}, nil)
	return sum, err
}

// retryable marks errors retrying cannot fix as permanent for retry.Do.
func retryable(err error) error {
	if errors.Is(err, errVanished) || !retry.Transient(err) {
		return retry.Permanent(err)
	}
	return err
}

// readSmall reads a small object (marker, entry) whole.
func readSmall(ctx context.Context, st storage.Storage, key string) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}
