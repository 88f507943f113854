package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/retry"
	"github.com/pitr-dev/pitr/wal"
)

// ErrNotFound is wrapped when the repository answered and holds no copy of
// the requested file: the one case where restore_command may exit 1.
var ErrNotFound = errors.New("not in the archive")

// FetchOptions configures Fetch and Prefetch.
type FetchOptions struct {
	Store storage.Storage
	Codec *envelope.Codec
	// Connect, when Store is nil, gives Fetch the store and codec once it
	// needs the repository: a segment already prefetched costs no client
	// set-up.
	Connect func(context.Context) (storage.Storage, *envelope.Codec, error)
	// PrefetchDir holds segments fetched ahead of their restore_command
	// call. Default: "pitr/prefetch" next to the destination (inside pg_wal).
	PrefetchDir string
	// Prefetch is how many following segments to fetch in the background;
	// 0 disables prefetching.
	Prefetch int
	// Retry bounds retries of transient storage errors.
	Retry retry.Policy
	// Repo names the repository (its URL) in errors.
	Repo string
	// StartPrefetch starts a background prefetch of the segments after the
	// one just fetched (the command runs `pitr wal-prefetch` detached, so
	// restore_command returns at once). Nil disables prefetching.
	StartPrefetch func(after string, segSize int64) error
	// While, when set, is checked by PrefetchResident every 100 ms: it
	// stops once While returns false (the recovering server's process is
	// gone).
	While func() bool
}

func (o *FetchOptions) prefetchDir(dest string) string {
	if o.PrefetchDir != "" {
		return o.PrefetchDir
	}
	return filepath.Join(filepath.Dir(dest), "pitr", "prefetch")
}

// Fetch restores the WAL file name (%f) to dest (%p). It writes a temporary
// file next to dest and renames it, so PostgreSQL never sees a partial file,
// and it hands over only bytes whose SHA-256 matches the repository's
// record. It returns an error wrapping ErrNotFound only when the repository
// confirmed that it holds no copy of name.
func Fetch(ctx context.Context, name, dest string, opts FetchOptions) error {
	n, err := wal.ParseName(name)
	if err != nil {
		return err
	}
	log := zerolog.Ctx(ctx)
	start := time.Now()
	pdir := opts.prefetchDir(dest)
	var size int64
	src := "repository"
	if n.Kind == wal.KindSegment {
		size, err = takePrefetched(pdir, n, dest)
		if err != nil {
			log.Warn().Err(err).Str("segment", name).Msg("prefetched segment rejected; fetching again")
		}
		if size > 0 {
			src = "prefetch"
		}
	}
	if size == 0 && opts.Store == nil && opts.Connect != nil {
		if opts.Store, opts.Codec, err = opts.Connect(ctx); err != nil {
			return err
		}
	}
	if size == 0 {
		// The whole fetch is retried, not each storage call (as
		// retry.Store would): a body that breaks mid-download must be
		// downloaded again from the start and verified, and an object
		// deleted between listing and reading (its chunks, once the
		// segment is stored whole) needs a new listing.
		err = retry.Do(ctx, opts.Retry, func(ctx context.Context) error {
			var err error
			size, err = fetchOnce(ctx, opts.Store, opts.Codec, name, dest)
			return classify(err)
		}, func(err error, wait time.Duration) {
			log.Warn().Err(err).Str("segment", name).Dur("retry_in", wait.Round(time.Millisecond)).Msg("wal fetch failed; retrying")
		})
		if errors.Is(err, ErrNotFound) {
			// Only a repository can say a file is not archived: a wrong
			// URL must stop recovery, not end it early (the server would
			// promote). One request, on this path only, retried: a
			// transient error here would stop recovery for nothing.
			if cerr := repo.New(retry.New(opts.Store, opts.Retry), nil).Check(ctx, opts.Repo); cerr != nil {
				return fmt.Errorf("wal-fetch %s: %w", name, cerr)
			}
		}
		if err != nil {
			return err
		}
	}
	log.Info().Str("segment", name).Str("from", src).Int64("bytes", size).Dur("took", time.Since(start).Round(time.Millisecond)).Msg("wal fetched")
	if n.Kind == wal.KindSegment && opts.Prefetch > 0 && opts.StartPrefetch != nil && wal.ValidSegmentSize(size) {
		cleanPrefetched(pdir, n)
		// The resident prefetcher reads where recovery is from .wanted;
		// one is started when none runs.
		if err := setWanted(pdir, name); err != nil {
			log.Warn().Err(err).Msg("could not record the segment for prefetch")
		} else if !prefetcherRunning(pdir) {
			if err := opts.StartPrefetch(name, size); err != nil {
				log.Warn().Err(err).Msg("could not start prefetch")
			}
		}
	}
	return nil
}

// classify marks errors that retrying cannot fix as permanent.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, crypto.ErrWrongKey) || errors.Is(err, envelope.ErrChecksum) ||
		errors.Is(err, wal.ErrConflict) || errors.Is(err, wal.ErrCorrupt) || errors.Is(err, storage.ErrPermanent) {
		return retry.Permanent(err)
	}
	return err
}

// resolve finds the single stored object for name (a whole copy is listed
// before a seal), and the streamed chunks of the segment; with no whole
// copy or seal stored, the object is zero and the chunks are the segment.
func resolve(ctx context.Context, st storage.Storage, name string) (catalog.WALObject, []catalog.StreamChunk, error) {
	objs, chunks, err := wal.ListAll(ctx, st, name)
	if err != nil {
		return catalog.WALObject{}, nil, fmt.Errorf("list %s: %w", name, err)
	}
	if len(objs) == 0 {
		if len(chunks) > 0 {
			return catalog.WALObject{}, chunks, nil
		}
		return catalog.WALObject{}, nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	for _, o := range objs[1:] {
		if o.SHA256 != objs[0].SHA256 {
			return catalog.WALObject{}, nil, fmt.Errorf("%s: %w: the repository holds %d different copies", name, wal.ErrConflict, len(objs))
		}
	}
	return objs[0], chunks, nil // the chunks, for a seal
}

// fetchOnce downloads, verifies and renames into place; it returns the
// plaintext size.
func fetchOnce(ctx context.Context, st storage.Storage, codec *envelope.Codec, name, dest string) (int64, error) {
	o, chunks, err := resolve(ctx, st, name)
	if err != nil {
		return 0, err
	}
	if o.Key == "" {
		return fetchStreamed(ctx, st, codec, name, chunks, dest)
	}
	return download(ctx, st, codec, o, chunks, dest)
}

// download fetches the stored object o; for a seal, chunks are the
// segment's as listed.
func download(ctx context.Context, st storage.Storage, codec *envelope.Codec, o catalog.WALObject, chunks []catalog.StreamChunk, dest string) (int64, error) {
	if o.Seal {
		return fetchSealed(ctx, st, codec, o, chunks, dest)
	}
	pr, classify, err := wal.OpenStored(ctx, st, codec, o.Key, o.Name, o.Encrypted, o.SHA256)
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	return writeAtomic(dest, o.Name, func(f *os.File) (int64, error) {
		n, err := io.Copy(f, pr)
		if err != nil {
			return 0, classify(err)
		}
		return n, nil
	})
}

// writeAtomic fills a temporary file next to dest and renames it into
// place, so PostgreSQL never sees a partial file; on error it leaves
// nothing.
func writeAtomic(dest, name string, fill func(*os.File) (int64, error)) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".pitr-"+name+".*")
	if err != nil {
		return 0, fmt.Errorf("create temp file: %w", err)
	}
	n, err := fill(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dest)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, err
	}
	return n, nil
}

// prefetched lists segment names already in dir (complete or in flight).
func prefetched(dir string) map[string]bool {
	out := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := strings.TrimPrefix(e.Name(), ".inflight-")
		if len(n) >= 24 {
			out[n[:24]] = true
		}
	}
	return out
}

// takePrefetched moves a prefetched copy of n to dest and returns its size;
// 0 if there is none. A file gets its final name "<segment>.<sha256>.<tag>"
// only after the prefetcher verified its SHA-256, so it is not hashed again
// here (that doubled the CPU of every restore_command call). A copy tagged
// with another boot's id (the machine crashed or rebooted since: it may
// never have reached the disk) or whose size is not a valid segment size
// is removed. Copies named "<segment>.<sha256>" by an older pitr were
// fsynced.
func takePrefetched(dir string, n wal.Name, dest string) (int64, error) {
	matches, _ := filepath.Glob(filepath.Join(dir, n.String()+".*"))
	boot := bootTag()
	for _, p := range matches {
		rest := strings.TrimPrefix(filepath.Base(p), n.String()+".")
		sum, tag, _ := strings.Cut(rest, ".")
		if len(sum) != 64 {
			continue
		}
		if tag != "" && tag != syncedTag && (boot == "" || tag != boot) {
			os.Remove(p)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || !wal.ValidSegmentSize(fi.Size()) {
			os.Remove(p)
			return 0, fmt.Errorf("prefetched %s has a bad size", n)
		}
		if err := os.Rename(p, dest); err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	return 0, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// cleanPrefetched removes prefetched segments of n's timeline older than n:
// recovery has moved past them.
func cleanPrefetched(dir string, n wal.Name) {
	entries, _ := os.ReadDir(dir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, e := range names {
		if len(e) > 24 && e[:8] == n.String()[:8] && e[:24] < n.String() {
			os.Remove(filepath.Join(dir, e))
		}
	}
}
