package repo

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// Pack GC reclaims the packs of file snapshots that no kept snapshot
// needs, in two phases with a grace period between them (kopia's
// maintenance, restic's prune), so that a snapshot running at the same
// time never loses a chunk it counts on. Nothing stored is modified:
// packs, index objects and records are only created and deleted.
//
//  1. Referenced chunks are the chunk IDs in the manifests of every
//     complete snapshot the GC lists, except those retention drops
//     (reading them needs the identity). It is told what is dropped, not
//     what remains: a snapshot that finishes after retention listed the
//     snapshots is one retention never saw, and it must count. Packs holding none are candidates; so are packs whose
//     referenced bytes are below RepackBelow of their blobs' bytes, once
//     their live chunks are copied (ReadBlob, then a PackWriter) into new
//     packs with their own index objects: a repack is new objects, never a
//     rewrite. A chunk held by several packs counts for one, its owner
//     (the first staying pack holding it), so a pack of duplicates is a
//     candidate too. Packs younger than the grace are left alone (a
//     snapshot in progress may have just stored them).
//  2. Phase 1 condemns the candidates: a create-only record
//     files/condemned/<id>.json lists them with the time each was first
//     condemned (catalog's gc.go). From then on LoadChunkIndex marks them
//     condemned and PackWriter.Has ignores them, so a snapshot whose
//     index was loaded after the record stores those chunks afresh in new
//     packs; a restore still reads them.
//  3. Phase 2, in a later run: a pack condemned more than the grace ago is
//     deleted, its index objects FIRST, then the pack (a pack without an
//     index object is never used; an index object naming a missing pack
//     would be), but only if every chunk of it that a complete snapshot
//     references (the snapshot list is read again: one may have finished
//     since the plan) is also in a pack not condemned, and no snapshot in
//     progress (a reservation without its entry) was reserved before the
//     record's time plus the grace: such a snapshot may have loaded its
//     index before the record existed, and its packs and chunk
//     references are not visible yet. Snapshots in progress are listed
//     before the complete ones, so one finishing in between is seen. A
//     condemned pack found referenced again, with no other copy, is
//     un-condemned (the fewest such packs that hold every referenced
//     chunk).
//  4. Each run that changes the condemned set writes one new record
//     carrying every pack still condemned (with its first time), leaving
//     out the deleted and un-condemned ones, and naming the records it
//     supersedes, which it then deletes. Readers take the records no
//     other record supersedes, and list again when one vanishes while
//     they read, so a record being replaced is never missed.
//  5. Packs without an index object older than the grace (a snapshot
//     killed between pack and index, or a deletion cut short between the
//     two) are deleted, unless a snapshot in progress was reserved before
//     the pack's time plus the grace (it may be storing the index object).
//     Packs under an Object Lock are counted and stay condemned.
//
// What a crash leaves: before the record, new repacked packs (indexed,
// harmless duplicates) and nothing condemned; after deleting some index
// objects, packs without an index (step 5 removes them) and the old
// record naming them (harmless: deletes of missing keys succeed); after
// the new record, old superseded records (ignored, deleted next run).
//
// Assumptions: one pack GC at a time (pitr retain runs it); the grace is
// longer than the longest snapshot (retention removes older reservations
// as leftovers, and a snapshot whose reservation is gone is no longer
// seen in progress), than a snapshot takes from reading the records (at
// the end of loading its index) to reserving its id (moments), and than
// the clock skew between hosts and the store; every host snapshotting
// runs a pitr that reads the records. A leftover reservation of a killed
// snapshot holds back deletions until retention cleans it up: that only
// delays them.

// DefaultRepackBelow is the share of referenced bytes under which a pack
// is repacked.
const DefaultRepackBelow = 0.5

// PackGCOptions tune PlanPackGCWith.
type PackGCOptions struct {
	Now   time.Time
	Grace time.Duration
	// RepackBelow: a pack whose referenced bytes are below this share of
	// its blobs' bytes (and older than Grace) is repacked. 0 is
	// DefaultRepackBelow; negative turns repacking off.
	RepackBelow float64
}

// PackGCSummary says what a pack GC does (planned, or done once Apply
// returned). Bytes are stored bytes.
type PackGCSummary struct {
	Packs     int64 `json:"packs"` // indexed packs in the repository
	PackBytes int64 `json:"pack_bytes"`
	Chunks    int64 `json:"chunks"` // distinct chunks the kept snapshots reference

	CondemnPacks int64 `json:"condemn_packs"` // condemned now, deleted by a run after the grace
	CondemnBytes int64 `json:"condemn_bytes"`
	DeletePacks  int64 `json:"delete_packs"` // deleted now: condemned over the grace ago, and leftovers
	DeleteBytes  int64 `json:"delete_bytes"`
	// Of the deleted: packs without an index object.
	LeftoverPacks int64 `json:"leftover_packs"`
	LeftoverBytes int64 `json:"leftover_bytes"`
	// Partly used packs rewritten (the old ones are condemned, counted in
	// CondemnPacks too), and the live chunks copied out of them.
	RepackPacks      int64 `json:"repack_packs"`
	RepackBytes      int64 `json:"repack_bytes"`
	RepackChunks     int64 `json:"repack_chunks"`
	RepackChunkBytes int64 `json:"repack_chunk_bytes"` // plaintext
	// Condemned earlier and still waiting: within the grace, or held back
	// by a snapshot in progress (HeldPacks), or under an object lock.
	WaitingPacks int64 `json:"waiting_packs"`
	WaitingBytes int64 `json:"waiting_bytes"`
	HeldPacks    int64 `json:"held_packs"`
	LockedPacks  int64 `json:"locked_packs"`
	LockedBytes  int64 `json:"locked_bytes"`
	SparedPacks  int64 `json:"spared_packs"` // condemned earlier, referenced again: un-condemned
}

// Frees is how many stored bytes the run frees now, and how many once the
// packs it condemns are deleted by a later run.
func (s PackGCSummary) Frees() (now, later int64) {
	return s.DeleteBytes, s.CondemnBytes
}

// String is the summary in one line, e.g. "condemn 3 packs (48.0 MiB),
// delete 2 (32.0 MiB), repack 1 (5 chunks), 4 waiting".
func (s PackGCSummary) String() string {
	out := fmt.Sprintf("condemn %d packs (%s), delete %d (%s), repack %d (%d chunks), %d waiting",
		s.CondemnPacks, mib(s.CondemnBytes), s.DeletePacks, mib(s.DeleteBytes), s.RepackPacks, s.RepackChunks, s.WaitingPacks)
	if s.HeldPacks > 0 {
		out += fmt.Sprintf(" (%d held by snapshots in progress)", s.HeldPacks)
	}
	if s.SparedPacks > 0 {
		out += fmt.Sprintf(", %d un-condemned", s.SparedPacks)
	}
	if s.LockedPacks > 0 {
		out += fmt.Sprintf(", %d locked (%s)", s.LockedPacks, mib(s.LockedBytes))
	}
	return out
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// PackGC is a planned pack GC: PlanPackGC looks, Apply acts.
type PackGC struct {
	r       *Repo
	opts    PackGCOptions
	known   map[string]bool               // complete snapshots at plan time: set/id
	refs    map[chunkKey]chunkKey         // referenced chunk ID -> plaintext SHA-256
	refsMu  sync.Mutex                    // guards refs while manifests are read
	indexes map[string]*catalog.PackIndex // index objects read, by SHA-256 (immutable)
	st      gcState
	summary PackGCSummary
	applied bool
}

type chunkKey [32]byte

func parseChunkKey(s string) (chunkKey, bool) {
	var k chunkKey
	if len(s) != 64 {
		return k, false
	}
	_, err := hex.Decode(k[:], []byte(s))
	return k, err == nil
}

// gcState is one look at the repository's packs.
type gcState struct {
	packs      map[string]*gcPack // indexed packs, by SHA-256
	leftovers  []storage.ObjectInfo
	condemned  map[string]catalog.CondemnedPack // by pack
	records    []string                         // ids of every record listed
	inProgress []time.Time                      // reservation times of snapshots in progress
}

type gcAction int

const (
	gcKeep    gcAction = iota
	gcCondemn          // unreferenced: condemn now
	gcRepack           // partly used: copy its live chunks, then condemn
	gcWait             // condemned, within the grace or held back
	gcDelete           // condemned over the grace ago: delete
	gcSpare            // condemned, but referenced again with no other copy
)

type gcPack struct {
	sum     string
	index   *catalog.PackIndex
	indexes []string // its index objects' SHA-256s
	size    int64
	mod     time.Time
	stored  bool // the pack object is listed
	action  gcAction
	held    bool // gcWait because of a snapshot in progress
}

// PlanPackGC decides which packs can go, given the snapshots retention
// drops: every other complete snapshot of every set it lists, also one
// finished since retention looked, keeps its chunks. It writes nothing.
// It needs the age identity when a kept snapshot's manifest is encrypted.
func (r *Repo) PlanPackGC(ctx context.Context, dropped []*catalog.Snapshot, now time.Time, grace time.Duration) (*PackGC, error) {
	return r.PlanPackGCWith(ctx, dropped, PackGCOptions{Now: now, Grace: grace})
}

// PlanPackGCWith is PlanPackGC with options.
func (r *Repo) PlanPackGCWith(ctx context.Context, dropped []*catalog.Snapshot, opts PackGCOptions) (*PackGC, error) {
	if opts.Grace < 0 {
		return nil, fmt.Errorf("pack gc: grace %s is negative", opts.Grace)
	}
	if opts.RepackBelow == 0 {
		opts.RepackBelow = DefaultRepackBelow
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	opts.Now = opts.Now.UTC()
	g := &PackGC{r: r, opts: opts, known: map[string]bool{}, refs: map[chunkKey]chunkKey{}, indexes: map[string]*catalog.PackIndex{}}
	// Snapshots in progress first, then the complete ones: one finishing
	// in between is seen complete.
	inProgress, err := r.snapshotsInProgress(ctx)
	if err != nil {
		return nil, err
	}
	all, err := g.listSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	drop := map[string]bool{}
	for _, s := range dropped {
		drop[s.Set+"/"+s.ID] = true
	}
	var kept []*catalog.Snapshot
	for _, s := range all {
		k := s.Set + "/" + s.ID
		g.known[k] = true
		if !drop[k] {
			kept = append(kept, s)
		}
	}
	if err := r.canReadManifests(kept); err != nil {
		return nil, err
	}
	if err := g.addAllRefs(ctx, kept); err != nil {
		return nil, err
	}
	if err := g.look(ctx, inProgress); err != nil {
		return nil, err
	}
	g.decide()
	return g, nil
}

// canReadManifests refuses to go on without the identity an encrypted
// manifest needs: a chunk it names would look unreferenced.
func (r *Repo) canReadManifests(snaps []*catalog.Snapshot) error {
	if r.codec != nil && len(r.codec.Identities) > 0 {
		return nil
	}
	for _, s := range snaps {
		if s.Encrypted || r.codec == nil {
			return fmt.Errorf("reclaiming file packs needs the age identity (age_identity_file) to read the manifest of snapshot %s of %s", s.ID, s.Set)
		}
	}
	return nil
}

// listSnapshots lists every complete snapshot; a damaged entry stops the
// GC, since its chunks cannot be told.
func (g *PackGC) listSnapshots(ctx context.Context) ([]*catalog.Snapshot, error) {
	all, damaged, err := g.r.ListSnapshots(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("pack gc: %w", err)
	}
	if len(damaged) > 0 {
		d := damaged[0]
		return nil, fmt.Errorf("pack gc: snapshot %s of %s is damaged (%s): the chunks it names cannot be told; remove or repair it first", d.ID, d.Set, d.Reason)
	}
	return all, nil
}

// addAllRefs adds the chunks the manifests of snaps name to the
// referenced set, reading a few manifests at once.
func (g *PackGC) addAllRefs(ctx context.Context, snaps []*catalog.Snapshot) error {
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(4)
	for _, s := range snaps {
		eg.Go(func() error { return g.addRefs(ectx, s) })
	}
	return eg.Wait()
}

// addRefs adds the chunks the manifest of s names to the referenced set.
func (g *PackGC) addRefs(ctx context.Context, s *catalog.Snapshot) error {
	m, err := g.r.OpenManifest(ctx, s)
	if err != nil {
		return fmt.Errorf("pack gc: %w", err)
	}
	defer m.Close()
	err = m.Scan(ctx, func(e *catalog.ManifestEntry) error {
		g.refsMu.Lock()
		defer g.refsMu.Unlock()
		for _, c := range e.Chunks {
			id, ok := parseChunkKey(c.ID)
			sum, ok2 := parseChunkKey(c.SHA256)
			if !ok || !ok2 {
				return fmt.Errorf("chunk %q: not a chunk id and sha256", c.ID)
			}
			g.refs[id] = sum
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack gc: manifest of snapshot %s of %s: %w", s.ID, s.Set, err)
	}
	return nil
}

// look lists the packs, index objects (reading the ones not read yet)
// and condemned records; inProgress are the reservation times of the
// snapshots in progress, listed before the complete snapshots were.
func (g *PackGC) look(ctx context.Context, inProgress []time.Time) error {
	r := g.r
	st := gcState{packs: map[string]*gcPack{}, inProgress: inProgress}
	var err error
	if st.condemned, st.records, err = r.condemned(ctx); err != nil {
		return err
	}
	objs := map[string]storage.ObjectInfo{}
	err = r.st.List(ctx, catalog.PacksPrefix, func(oi storage.ObjectInfo) error {
		if sum, ok := catalog.ParsePackKey(oi.Key); ok {
			objs[sum] = oi
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack gc: list packs: %w", err)
	}
	sums, err := r.IndexObjects(ctx)
	if err != nil {
		return fmt.Errorf("pack gc: %w", err)
	}
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	var missing []string
	for _, sum := range sums {
		if g.indexes[sum] == nil {
			missing = append(missing, sum)
		}
	}
	for _, sum := range missing {
		eg.Go(func() error {
			pi, err := r.ReadIndexObject(ectx, sum)
			if err != nil {
				return fmt.Errorf("pack gc: %w", err)
			}
			mu.Lock()
			defer mu.Unlock()
			g.indexes[sum] = pi
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	for _, sum := range sums {
		pi := g.indexes[sum]
		p := st.packs[pi.Pack]
		if p == nil {
			oi, ok := objs[pi.Pack]
			p = &gcPack{sum: pi.Pack, index: pi, size: pi.Size, mod: oi.ModTime, stored: ok}
			st.packs[pi.Pack] = p
		}
		p.indexes = append(p.indexes, sum)
	}
	g.st = st
	for sum, oi := range objs {
		// A snapshot in progress may be storing its index object yet.
		if st.packs[sum] == nil && g.opts.Now.Sub(oi.ModTime) >= g.opts.Grace && !g.heldBack(oi.ModTime) {
			g.st.leftovers = append(g.st.leftovers, oi)
		}
	}
	sort.Slice(g.st.leftovers, func(i, j int) bool { return g.st.leftovers[i].Key < g.st.leftovers[j].Key })
	return nil
}

// decide sets each pack's action and the summary from the state and the
// referenced chunks.
func (g *PackGC) decide() {
	now, grace := g.opts.Now, g.opts.Grace
	var s PackGCSummary
	s.Chunks = int64(len(g.refs))
	for _, p := range g.st.packs {
		p.action, p.held = gcKeep, false
	}
	sums := g.sortedPacks()
	g.spare(sums)
	// Each referenced chunk counts for one pack only, its owner: the first
	// staying pack holding it. A pack of duplicates (a chunk stored again
	// beside a condemned pack, or by two hosts at once) owns nothing.
	owner := map[string]string{}
	for _, sum := range sums {
		p := g.st.packs[sum]
		if _, was := g.st.condemned[sum]; was && p.action != gcSpare || !p.stored {
			continue
		}
		for _, b := range p.index.Blobs {
			if _, ok := owner[b.ID]; !ok && g.referenced(b.ID) {
				owner[b.ID] = sum
			}
		}
	}

	for _, sum := range sums {
		p := g.st.packs[sum]
		s.Packs++
		s.PackBytes += p.size
		var live, total int64
		for _, b := range p.index.Blobs {
			total += b.Length
			if owner[b.ID] == sum {
				live += b.Length
			}
		}
		c, condemned := g.st.condemned[sum]
		switch {
		case p.action == gcSpare:
			s.SparedPacks++
		case condemned && now.Sub(c.Since) < grace:
			p.action = gcWait
		case condemned && g.heldBack(c.Since):
			p.action, p.held = gcWait, true
			s.HeldPacks++
		case condemned:
			p.action = gcDelete
			s.DeletePacks++
			s.DeleteBytes += p.size
		case now.Sub(p.mod) < grace || !p.stored:
			// young, or an index object whose pack is missing (verify's to report)
		case live == 0:
			p.action = gcCondemn
			s.CondemnPacks++
			s.CondemnBytes += p.size
		case g.opts.RepackBelow > 0 && float64(live) < g.opts.RepackBelow*float64(total) && (g.r.Encrypted() || p.index.Header == 4):
			// (chunks of an encrypted pack are never copied into a plaintext one)
			p.action = gcRepack
			s.RepackPacks++
			s.RepackBytes += p.size
			s.CondemnPacks++
			s.CondemnBytes += p.size
		}
		if p.action == gcWait {
			s.WaitingPacks++
			s.WaitingBytes += p.size
		}
	}
	// Chunks a repack copies: referenced, held by no pack that stays live.
	avail := g.available()
	seen := map[string]bool{}
	for _, sum := range g.sortedPacks() {
		p := g.st.packs[sum]
		if p.action != gcRepack {
			continue
		}
		for _, b := range p.index.Blobs {
			if _, ok := avail.LookupLive(b.ID); ok || seen[b.ID] || !g.referenced(b.ID) {
				continue
			}
			seen[b.ID] = true
			s.RepackChunks++
			s.RepackChunkBytes += b.Size
		}
	}
	for _, oi := range g.st.leftovers {
		s.DeletePacks++
		s.DeleteBytes += oi.Size
		s.LeftoverPacks++
		s.LeftoverBytes += oi.Size
	}
	g.summary = s
}

func (g *PackGC) sortedPacks() []string {
	out := make([]string, 0, len(g.st.packs))
	for sum := range g.st.packs {
		out = append(out, sum)
	}
	sort.Strings(out)
	return out
}

func (g *PackGC) referenced(id string) bool {
	k, ok := parseChunkKey(id)
	if !ok {
		return true // unreadable: never treat it as unused
	}
	_, ok = g.refs[k]
	return ok
}

// available returns an index of every indexed pack, with those that are
// (or, by their action, will be) condemned marked so: LookupLive finds a
// chunk only in a pack that stays.
func (g *PackGC) available() *ChunkIndex {
	ix := NewChunkIndex()
	for sum, p := range g.st.packs {
		_, was := g.st.condemned[sum]
		switch {
		case p.action == gcSpare:
		case was, p.action != gcKeep, !p.stored:
			ix.Condemn(sum)
		}
	}
	for _, sum := range g.sortedPacks() {
		p := g.st.packs[sum]
		for _, isum := range p.indexes {
			ix.Add(isum, g.indexes[isum])
		}
	}
	return ix
}

// spare un-condemns the fewest condemned packs (greedily, the one holding
// the most referenced chunks no staying pack holds, first) so that every
// referenced chunk is in a pack that stays: a snapshot finished since the
// packs were condemned may use them.
func (g *PackGC) spare(sums []string) {
	covered := map[string]bool{}
	add := func(p *gcPack) {
		for _, b := range p.index.Blobs {
			if g.referenced(b.ID) {
				covered[b.ID] = true
			}
		}
	}
	for _, sum := range sums {
		if _, was := g.st.condemned[sum]; !was && g.st.packs[sum].stored {
			add(g.st.packs[sum])
		}
	}
	for {
		var best *gcPack
		bestN := 0
		for _, sum := range sums {
			p := g.st.packs[sum]
			if _, was := g.st.condemned[sum]; !was || p.action == gcSpare || !p.stored {
				continue
			}
			n := 0
			for _, b := range p.index.Blobs {
				if !covered[b.ID] && g.referenced(b.ID) {
					n++
				}
			}
			if n > bestN {
				best, bestN = p, n
			}
		}
		if best == nil {
			return
		}
		best.action = gcSpare
		add(best)
	}
}

// heldBack says whether a snapshot in progress may use a pack condemned
// at since: it was reserved before since plus the grace, so it may have
// loaded its index before the record existed. For a pack without an
// index object, since is the pack's time: such a snapshot may be about
// to store its index object.
func (g *PackGC) heldBack(since time.Time) bool {
	for _, t := range g.st.inProgress {
		if t.Before(since.Add(g.opts.Grace)) {
			return true
		}
	}
	return false
}

// Summary says what the GC does: planned, or done once Apply returned.
func (g *PackGC) Summary() PackGCSummary { return g.summary }

// Apply carries the plan out: it looks at the repository again (packs,
// records, snapshots finished since the plan, snapshots in progress),
// decides again with what it finds, repacks, deletes, and records the
// condemned packs. Summary then says what it did. A PackGC applies once.
func (g *PackGC) Apply(ctx context.Context) error {
	if g.applied {
		return errors.New("pack gc: applied already")
	}
	g.applied = true
	r, log := g.r, zerolog.Ctx(ctx)
	inProgress, err := r.snapshotsInProgress(ctx) // before the complete ones, as in the plan
	if err != nil {
		return err
	}
	all, err := g.listSnapshots(ctx)
	if err != nil {
		return err
	}
	var finished []*catalog.Snapshot // since the plan
	for _, s := range all {
		if k := s.Set + "/" + s.ID; !g.known[k] {
			finished = append(finished, s)
			g.known[k] = true
		}
	}
	if err := r.canReadManifests(finished); err != nil {
		return err
	}
	if err := g.addAllRefs(ctx, finished); err != nil {
		return err
	}
	if err := g.look(ctx, inProgress); err != nil {
		return err
	}
	g.decide()
	sum := &g.summary

	// Repack first: the copies must be stored before their originals are
	// condemned.
	avail := g.available()
	if sum.RepackPacks > 0 {
		if err := g.repack(ctx, avail); err != nil {
			return err
		}
	}

	// Phase 2: index objects first, then the pack.
	var errs []error
	locker, hasLocks := storage.LockerOf(r.st)
	keep := map[string]catalog.CondemnedPack{}
	for _, ps := range g.sortedPacks() {
		p := g.st.packs[ps]
		c := g.st.condemned[ps]
		switch p.action {
		case gcCondemn, gcRepack:
			keep[ps] = catalog.CondemnedPack{Pack: ps, Indexes: p.indexes, Size: p.size, Since: g.opts.Now, Repack: p.action == gcRepack}
		case gcWait:
			keep[ps] = c
		case gcDelete:
			if hasLocks && g.locked(ctx, locker, p) {
				sum.DeletePacks--
				sum.DeleteBytes -= p.size
				sum.LockedPacks++
				sum.LockedBytes += p.size
				keep[ps] = c
				continue
			}
			if err := g.deletePack(ctx, p); err != nil {
				errs = append(errs, err)
				sum.DeletePacks--
				sum.DeleteBytes -= p.size
				keep[ps] = c
				continue
			}
			log.Debug().Str("pack", ps).Int64("bytes", p.size).Msg("files pack deleted")
		}
	}
	for _, oi := range g.st.leftovers {
		if err := r.st.Delete(ctx, oi.Key); err != nil {
			if errors.Is(err, storage.ErrLocked) {
				sum.LockedPacks++
				sum.LockedBytes += oi.Size
			} else {
				errs = append(errs, fmt.Errorf("delete pack without index %s: %w", oi.Key, err))
			}
			sum.DeletePacks--
			sum.DeleteBytes -= oi.Size
			sum.LeftoverPacks--
			sum.LeftoverBytes -= oi.Size
		}
	}
	if err := g.record(ctx, keep); err != nil {
		errs = append(errs, err)
	}
	log.Info().Int64("packs_condemned", sum.CondemnPacks).Int64("condemned_bytes", sum.CondemnBytes).
		Int64("packs_deleted", sum.DeletePacks).Int64("deleted_bytes", sum.DeleteBytes).
		Int64("packs_repacked", sum.RepackPacks).Int64("chunks_copied", sum.RepackChunks).
		Int64("packs_waiting", sum.WaitingPacks).Int64("packs_held", sum.HeldPacks).
		Int64("packs_locked", sum.LockedPacks).Int64("packs_spared", sum.SparedPacks).Msg("files pack gc done")
	return errors.Join(errs...)
}

// repack copies the referenced chunks of the packs to repack that no
// staying pack holds into new packs (avail: every staying pack, and the
// new ones once stored).
func (g *PackGC) repack(ctx context.Context, avail *ChunkIndex) error {
	pw := g.r.NewPackWriter(ctx, avail, "")
	var copied, bytesCopied int64
	for _, ps := range g.sortedPacks() {
		p := g.st.packs[ps]
		if p.action != gcRepack {
			continue
		}
		for _, b := range p.index.Blobs {
			k, ok := parseChunkKey(b.ID)
			if !ok {
				continue
			}
			want, ok := g.refs[k]
			if !ok || pw.Has(b.ID) {
				continue
			}
			ref := BlobRef{Pack: p.sum, Header: p.index.Header, Blob: b}
			data, err := g.r.ReadBlob(ctx, ref, false, hex.EncodeToString(want[:]))
			if err != nil {
				_ = pw.Close()
				return fmt.Errorf("pack gc: repack %.16s: %w", p.sum, err)
			}
			if _, err := pw.Add(b.ID, data); err != nil {
				_ = pw.Close()
				return fmt.Errorf("pack gc: repack %.16s: %w", p.sum, err)
			}
			copied++
			bytesCopied += int64(len(data))
		}
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("pack gc: repack: %w", err)
	}
	g.summary.RepackChunks, g.summary.RepackChunkBytes = copied, bytesCopied
	return nil
}

// locked says whether the store still holds p's pack or an index object
// under a retention lock (an error reading it counts as locked: keep it).
func (g *PackGC) locked(ctx context.Context, l storage.Locker, p *gcPack) bool {
	keys := []string{}
	if k, err := catalog.PackKey(p.sum); err == nil {
		keys = append(keys, k)
	}
	for _, isum := range p.indexes {
		if k, err := catalog.IndexKey(isum); err == nil {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		until, err := l.LockedUntil(ctx, k)
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil || until.After(g.opts.Now) {
			return true
		}
	}
	return false
}

// deletePack deletes p's index objects, then the pack.
func (g *PackGC) deletePack(ctx context.Context, p *gcPack) error {
	for _, isum := range p.indexes {
		key, err := catalog.IndexKey(isum)
		if err != nil {
			return err
		}
		if err := g.r.st.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete index of pack %.16s: %w", p.sum, err)
		}
	}
	key, err := catalog.PackKey(p.sum)
	if err != nil {
		return err
	}
	if err := g.r.st.Delete(ctx, key); err != nil {
		// Its index objects are gone: it is a pack without an index now,
		// removed by a later run.
		return fmt.Errorf("delete pack %.16s: %w", p.sum, err)
	}
	return nil
}

// record writes the condemned set keep as one new record superseding
// every record listed, then deletes those; nothing when the set is the
// one a single record holds already.
func (g *PackGC) record(ctx context.Context, keep map[string]catalog.CondemnedPack) error {
	r := g.r
	old := g.st.records
	if len(old) == 1 && sameCondemned(keep, g.st.condemned) {
		return nil
	}
	if len(keep) > 0 {
		host, _ := os.Hostname()
		c := &catalog.Condemned{Format: catalog.FormatVersion, Time: g.opts.Now, Host: host, Packs: []catalog.CondemnedPack{}, Supersedes: old}
		for _, ps := range slices.Sorted(maps.Keys(keep)) {
			c.Packs = append(c.Packs, keep[ps])
		}
		id, err := r.createRecord(ctx, c)
		if err != nil {
			return err
		}
		zerolog.Ctx(ctx).Debug().Str("record", id).Int("packs", len(c.Packs)).Msg("files condemned packs recorded")
	}
	var errs []error
	for _, id := range old {
		key, err := catalog.CondemnedKey(id)
		if err != nil {
			continue
		}
		if err := r.st.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrLocked) {
			errs = append(errs, fmt.Errorf("delete superseded record %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

func sameCondemned(a, b map[string]catalog.CondemnedPack) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || !x.Since.Equal(y.Since) {
			return false
		}
	}
	return true
}

// createRecord stores c create-only under the first free id of its
// second and returns the id.
func (r *Repo) createRecord(ctx context.Context, c *catalog.Condemned) (string, error) {
	for seq := range catalog.MaxIDSeq + 1 {
		c.ID = catalog.BackupIDSeq(c.Time, seq)
		key, err := catalog.CondemnedKey(c.ID)
		if err != nil {
			return "", err
		}
		err = r.st.Create(ctx, key, bytes.NewReader(catalog.MarshalCondemned(c)))
		if err == nil {
			return c.ID, nil
		}
		if !errors.Is(err, storage.ErrExist) {
			return "", fmt.Errorf("write condemned record %s: %w", key, err)
		}
	}
	return "", fmt.Errorf("write condemned record: all %d ids of %s are taken", catalog.MaxIDSeq+1, catalog.BackupID(c.Time))
}

// condemned reads the condemned-pack records: the packs condemned (by
// the records no other supersedes; a pack in two keeps its first time)
// and the ids of every record listed. A record that vanishes while read
// was superseded by one written meanwhile: the listing is read again.
func (r *Repo) condemned(ctx context.Context) (map[string]catalog.CondemnedPack, []string, error) {
	for try := 0; ; try++ {
		var ids []string
		err := r.st.List(ctx, catalog.CondemnedPrefix, func(oi storage.ObjectInfo) error {
			if id, ok := catalog.ParseCondemnedKey(oi.Key); ok {
				ids = append(ids, id)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("list condemned packs: %w", err)
		}
		recs := make([]*catalog.Condemned, 0, len(ids))
		vanished := false
		for _, id := range ids {
			c, err := r.readRecord(ctx, id)
			if errors.Is(err, storage.ErrNotExist) {
				vanished = true
				break
			}
			if err != nil {
				return nil, nil, err
			}
			recs = append(recs, c)
		}
		if vanished {
			if try < 10 {
				continue
			}
			return nil, nil, errors.New("read condemned packs: records keep changing while read")
		}
		superseded := map[string]bool{}
		for _, c := range recs {
			for _, id := range c.Supersedes {
				superseded[id] = true
			}
		}
		out := map[string]catalog.CondemnedPack{}
		for _, c := range recs {
			if superseded[c.ID] {
				continue
			}
			for _, p := range c.Packs {
				if q, ok := out[p.Pack]; !ok || p.Since.Before(q.Since) {
					out[p.Pack] = p
				}
			}
		}
		return out, ids, nil
	}
}

func (r *Repo) readRecord(ctx context.Context, id string) (*catalog.Condemned, error) {
	key, err := catalog.CondemnedKey(id)
	if err != nil {
		return nil, err
	}
	rc, err := r.st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	c, err := catalog.UnmarshalCondemned(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if c.ID != id {
		return nil, fmt.Errorf("%s: %w: record names id %s", key, ErrDamaged, c.ID)
	}
	return c, nil
}

// condemnInto marks the condemned packs in ix (LoadChunkIndex's first
// and last step).
func (r *Repo) condemnInto(ctx context.Context, ix *ChunkIndex) error {
	cs, _, err := r.condemned(ctx)
	if err != nil {
		return fmt.Errorf("load chunk index: %w", err)
	}
	for p := range cs {
		ix.Condemn(p)
	}
	return nil
}

// snapshotsInProgress returns when each snapshot with a reservation but no
// entry was reserved: the earlier of its id's second and the object's
// time.
func (r *Repo) snapshotsInProgress(ctx context.Context) ([]time.Time, error) {
	reserved := map[string]time.Time{}
	done := map[string]bool{}
	err := r.st.List(ctx, catalog.SnapshotsPrefix, func(oi storage.ObjectInfo) error {
		parts := strings.Split(strings.TrimPrefix(oi.Key, catalog.SnapshotsPrefix), "/")
		if len(parts) != 3 {
			return nil
		}
		k := parts[0] + "/" + parts[1]
		switch parts[2] {
		case catalog.SnapshotEntryName:
			done[k] = true
		case catalog.ReservationName:
			t := oi.ModTime
			if it, ok := catalog.BackupIDTime(parts[1]); ok && (t.IsZero() || it.Before(t)) {
				t = it
			}
			reserved[k] = t
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pack gc: list snapshots in progress: %w", err)
	}
	var out []time.Time
	for k, t := range reserved {
		if !done[k] {
			out = append(out, t)
		}
	}
	return out, nil
}
