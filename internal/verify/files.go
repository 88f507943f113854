package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// files checks file snapshots: every index object against its name and
// its pack's presence and size, every manifest (read first, with the
// identity: every chunk it names must be in some pack), then every pack
// against the SHA-256 its key names and, with the identity, every blob in
// it (authenticated, decompressed, its plaintext against the manifests'
// SHA-256).
func (v *verifier) files(ctx context.Context) error {
	snaps, damaged, err := v.r.ListSnapshots(ctx, "")
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, d := range damaged {
		key, _ := catalog.SnapshotEntryKey(d.Set, d.ID)
		v.problem("%s: damaged entry: %s", key, d.Reason)
	}
	good, bad, err := v.r.PackIndexes(ctx, v.opts.IndexCacheDir)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for sum, err := range bad {
		key, _ := catalog.IndexKey(sum)
		v.problem("%s: %s", key, strings.TrimPrefix(oneLine(err.Error()), "read "+key+": "))
	}
	byPack := map[string]*catalog.PackIndex{}
	chunks := map[string]int64{} // chunk ID -> plaintext size, of chunks whose pack is stored
	for sum, pi := range good {
		key, _ := catalog.IndexKey(sum)
		pack, _ := catalog.PackKey(pi.Pack)
		o, ok := v.listing[pack]
		switch {
		case !ok:
			v.problem("%s: names pack %s, which is missing (its %d chunks are lost)", key, pack, len(pi.Blobs))
			continue
		case o.Size != pi.Size:
			v.problem("%s: %d bytes stored, its index %s records %d", pack, o.Size, key, pi.Size)
			continue
		}
		byPack[pi.Pack] = pi
		for _, b := range pi.Blobs {
			chunks[b.ID] = b.Size
		}
	}
	if err := v.manifests(ctx, snaps, chunks); err != nil {
		return err
	}
	var seen []string
	for key, o := range v.listing {
		if _, ok := catalog.ParseIndexKey(key); ok {
			seen = append(seen, key)
		}
		sum, ok := catalog.ParsePackKey(key)
		if !ok {
			continue
		}
		seen = append(seen, key)
		pi := byPack[sum]
		if pi == nil { // no index: a snapshot interrupted before it, or a damaged index; no chunk is looked up there
			pi = &catalog.PackIndex{Pack: sum, Size: o.Size}
		}
		open := len(pi.Blobs) > 0 && (v.ids || pi.Header == 4)
		level := levelStored
		if open {
			level = levelContent
		}
		v.add(task{obj: o, level: level, read: func(ctx context.Context) error {
			_, err := v.r.CheckPack(ctx, pi, open, v.sum)
			if errors.Is(err, storage.ErrNotExist) {
				return errVanished
			}
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			return nil
		}})
	}
	v.state.Files = seen
	return nil
}

// sum returns the plaintext SHA-256 the manifests read record for a chunk.
func (v *verifier) sum(id string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.sums[id]
}

// manifests checks each snapshot's manifest is stored with its size and,
// with the identity, reads it (checked against the entry's SHA-256) and
// looks up every chunk it names. A manifest verified by an earlier run is
// read again only when a pack or index object has gone since (its chunks
// may have gone with it), or with Full.
func (v *verifier) manifests(ctx context.Context, snaps []*catalog.Snapshot, chunks map[string]int64) error {
	gone := false
	for _, key := range v.state.Files {
		if _, ok := v.listing[key]; !ok {
			gone = true
			break
		}
	}
	g, gctx := errgroup.WithContext(metered(ctx))
	g.SetLimit(v.opts.Workers)
	for _, s := range snaps {
		o, ok := v.present(s.Manifest.Key, fmt.Sprintf("manifest of snapshot %s of %s", s.ID, s.Set), s.Manifest.Stored)
		if !ok {
			continue
		}
		if !v.canOpen(s.Encrypted) {
			v.count(&v.res.Sealed)
			continue
		}
		if !gone && !v.opts.Full && v.verified(o, levelContent) {
			v.count(&v.res.Skipped)
			continue
		}
		g.Go(func() error {
			err := v.manifest(gctx, s, chunks)
			if cerr := gctx.Err(); cerr != nil {
				return cerr
			}
			v.mu.Lock()
			defer v.mu.Unlock()
			v.res.Objects++
			v.res.Bytes += o.Size
			if err != nil {
				v.res.Problems = append(v.res.Problems, oneLine(err.Error()))
				delete(v.state.Objects, o.Key)
				return nil
			}
			v.state.record(o, levelContent)
			return nil
		})
	}
	return g.Wait()
}

// manifest reads one manifest and looks up its chunks. Problems name the
// snapshot and chunk IDs, never a path: the report is stored in plaintext.
func (v *verifier) manifest(ctx context.Context, s *catalog.Snapshot, chunks map[string]int64) error {
	m, err := v.r.OpenManifest(ctx, s)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Manifest.Key, err)
	}
	defer m.Close()
	var missing, wrong []string
	sums := map[string]string{}
	err = m.Scan(ctx, func(e *catalog.ManifestEntry) error {
		for _, c := range e.Chunks {
			size, ok := chunks[c.ID]
			switch {
			case !ok:
				missing = append(missing, c.ID)
			case size != c.Size:
				wrong = append(wrong, c.ID)
			}
			sums[c.ID] = c.SHA256
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", s.Manifest.Key, err)
	}
	v.mu.Lock()
	for id, sum := range sums {
		v.sums[id] = sum
	}
	v.mu.Unlock()
	var out []string
	if len(missing) > 0 {
		sort.Strings(missing)
		out = append(out, fmt.Sprintf("%d chunks in no pack (first %.16s)", len(missing), missing[0]))
	}
	if len(wrong) > 0 {
		sort.Strings(wrong)
		out = append(out, fmt.Sprintf("%d chunks of another size in the index (first %.16s)", len(wrong), wrong[0]))
	}
	if len(out) > 0 {
		return fmt.Errorf("%s: snapshot %s of %s: %s", s.Manifest.Key, s.ID, s.Set, strings.Join(out, "; "))
	}
	return nil
}
