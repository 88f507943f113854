package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// markerName is a small file at the root of every generated tree; verify
// finds the restored tree's root by it (restic restores under the absolute
// path it snapshotted, pitr under its own layout).
const markerName = ".bench-tree-root"

// Media files are incompressible (like JPEG, MP4 or PDF uploads) and their
// sizes log-uniform between these bounds; small files are text, log-uniform
// from 100 B to 4 KB (mean about 1 KB).
const (
	mediaMin, mediaMax = 100_000, 20_000_000
	smallMin, smallMax = 100, 4_000
	mediaPerDir        = 64
	smallPerDir        = 500
)

// TreeStats describes a generated tree (gen) or its change (change).
type TreeStats struct {
	Kind  string `json:"kind"` // tree or change
	Seed  uint64 `json:"seed"`
	Files int    `json:"files"` // regular files
	Dirs  int    `json:"dirs,omitempty"`
	Bytes int64  `json:"bytes"`

	MediaFiles int   `json:"media_files,omitempty"`
	MediaBytes int64 `json:"media_bytes,omitempty"`
	SmallFiles int   `json:"small_files,omitempty"`
	SmallBytes int64 `json:"small_bytes,omitempty"`

	// change: media bytes overwritten in place, appended and added as new
	// files, and small files appended to or only touched (mtime).
	ModifiedFiles int   `json:"modified_files,omitempty"`
	ModifiedBytes int64 `json:"modified_bytes,omitempty"`
	AppendedFiles int   `json:"appended_files,omitempty"`
	AppendedBytes int64 `json:"appended_bytes,omitempty"`
	AddedFiles    int   `json:"added_files,omitempty"`
	AddedBytes    int64 `json:"added_bytes,omitempty"`
	SmallEdited   int   `json:"small_edited,omitempty"`
	SmallTouched  int   `json:"small_touched,omitempty"`
}

func logUniform(r *rand.Rand, lo, hi float64) int64 {
	return int64(math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo))))
}

// seedBytes derives a ChaCha8 seed for one file from the tree's seed.
func seedBytes(seed uint64, what string, i int) [32]byte {
	var s [32]byte
	r := rand.New(rand.NewPCG(seed, uint64(i)<<8|uint64(len(what))))
	for j := 0; j < 32; j += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			s[j+k] = byte(v >> (8 * k))
		}
	}
	copy(s[:len(what)%32], what)
	return s
}

// writeRandom writes n incompressible bytes from src to w.
func writeRandom(w io.Writer, src *rand.ChaCha8, n int64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		b := buf[:min(int64(len(buf)), n)]
		_, _ = src.Read(b) // never fails
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= int64(len(b))
	}
	return nil
}

// vocabulary is a fixed list of pseudo-words for the text files.
func vocabulary(r *rand.Rand) []string {
	const letters = "etaoinshrdlucmfwypvbgkjqxz"
	words := make([]string, 2000)
	for i := range words {
		n := 2 + r.IntN(9)
		var b strings.Builder
		for j := 0; j < n; j++ {
			// Skewed towards the frequent letters, like prose.
			b.WriteByte(letters[int(float64(len(letters))*math.Pow(r.Float64(), 2))])
		}
		words[i] = b.String()
	}
	return words
}

// text returns about n bytes of lines of words.
func text(r *rand.Rand, words []string, n int64) []byte {
	b := make([]byte, 0, n+16)
	col := 0
	for int64(len(b)) < n {
		w := words[int(float64(len(words))*math.Pow(r.Float64(), 3))]
		b = append(b, w...)
		col += len(w) + 1
		if col > 60+r.IntN(20) {
			b = append(b, '\n')
			col = 0
		} else {
			b = append(b, ' ')
		}
	}
	return append(b[:n-1], '\n')
}

type mediaFile struct {
	path string
	size int64
	i    int
}

// cmdGen writes the tree: --small text files, then media files until the
// tree holds --mb MB (10^6 bytes), plus a few entries that test exactness
// (a 0600 secret in a 0700 directory, an executable, a symlink, an empty
// directory). The same seed gives the same tree.
func cmdGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	seed := fs.Uint64("seed", 1, "seed")
	mb := fs.Int64("mb", 2000, "tree size in MB (10^6 bytes)")
	small := fs.Int("small", 100_000, "number of small text files")
	workers := fs.Int("workers", 2, "files written at once")
	out := fs.String("out", "", "results file to append the tree's stats to")
	round := fs.Int("round", 0, "round number")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: gen [flags] DIR")
	}
	root := fs.Arg(0)
	if _, err := os.Lstat(root); err == nil {
		return fmt.Errorf("%s exists: gen writes a new tree", root)
	}
	start := time.Now()
	st := TreeStats{Kind: "tree", Seed: *seed}
	r := rand.New(rand.NewPCG(*seed, 0))
	words := vocabulary(r)
	mkdir := func(p string, mode os.FileMode) error {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		st.Dirs++
		return os.Chmod(p, mode)
	}
	if err := mkdir(root, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, markerName), fmt.Appendf(nil, "seed %d\n", *seed), 0o644); err != nil {
		return err
	}
	st.Files++
	st.Bytes += int64(len(fmt.Sprintf("seed %d\n", *seed)))

	// Small text files, in directories of smallPerDir; about one in twenty is 0600.
	for i := 0; i < *small; i++ {
		dir := filepath.Join(root, "text", fmt.Sprintf("%03d", i/smallPerDir))
		if i%smallPerDir == 0 {
			if err := mkdir(dir, 0o755); err != nil {
				return err
			}
		}
		b := text(r, words, logUniform(r, smallMin, smallMax))
		mode := os.FileMode(0o644)
		if r.IntN(20) == 0 {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d.txt", i)), b, mode); err != nil {
			return err
		}
		st.SmallFiles++
		st.SmallBytes += int64(len(b))
	}

	// The exactness entries.
	extras := []struct {
		path string
		mode os.FileMode
		body string
	}{
		{"secrets/.env.production", 0o600, "SECRET_KEY_BASE=" + string(text(r, words, 64))},
		{"secrets/keys/vapid.pem", 0o600, string(text(r, words, 200))},
		{"bin/run.sh", 0o755, "#!/bin/sh\nexec true\n"},
		{"name with spaces/ünïcödé.txt", 0o644, string(text(r, words, 300))},
	}
	for _, e := range extras {
		p := filepath.Join(root, e.path)
		if err := mkdir(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(e.body), e.mode); err != nil {
			return err
		}
		st.Files++
		st.Bytes += int64(len(e.body))
	}
	if err := os.Chmod(filepath.Join(root, "secrets"), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(root, "secrets/keys"), 0o700); err != nil {
		return err
	}
	if err := mkdir(filepath.Join(root, "cache/empty"), 0o755); err != nil {
		return err
	}
	if err := os.Symlink("media/000", filepath.Join(root, "current")); err != nil {
		return err
	}

	// Media files until the tree holds --mb MB.
	target := *mb*1_000_000 - st.SmallBytes - st.Bytes
	var media []mediaFile
	for have := int64(0); have < target; {
		size := min(logUniform(r, mediaMin, mediaMax), target-have)
		size = max(size, min(mediaMin, target-have))
		i := len(media)
		dir := filepath.Join(root, "media", fmt.Sprintf("%03d", i/mediaPerDir))
		if i%mediaPerDir == 0 {
			if err := mkdir(dir, 0o755); err != nil {
				return err
			}
		}
		media = append(media, mediaFile{path: filepath.Join(dir, fmt.Sprintf("%08x.bin", r.Uint32())), size: size, i: i})
		have += size
	}
	if err := parallel(*workers, len(media), func(k int) error {
		m := media[k]
		return writeFile(m.path, 0o644, func(w io.Writer) error {
			return writeRandom(w, rand.NewChaCha8(seedBytes(*seed, "media", m.i)), m.size)
		})
	}); err != nil {
		return err
	}
	for _, m := range media {
		st.MediaFiles++
		st.MediaBytes += m.size
	}
	st.Files += st.SmallFiles + st.MediaFiles
	st.Bytes += st.SmallBytes + st.MediaBytes
	fmt.Printf("tree %s: %d files (%d media, %.0f MB; %d small, %.1f MB), %.0f MB, %d directories, in %.1f s\n",
		root, st.Files, st.MediaFiles, float64(st.MediaBytes)/1e6, st.SmallFiles, float64(st.SmallBytes)/1e6,
		float64(st.Bytes)/1e6, st.Dirs, time.Since(start).Seconds())
	return harness.AppendJSON(*out, Result{Kind: st.Kind, Round: *round, Tree: &st})
}

// writeFile creates path with mode and lets fill write its content.
func writeFile(path string, mode os.FileMode, fill func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(workers, n int, fn func(int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		ferr error
	)
	for w := 0; w < max(1, workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				k := next
				next++
				stop := ferr != nil
				mu.Unlock()
				if stop || k >= n {
					return
				}
				if err := fn(k); err != nil {
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}

// listTree returns the regular files under root/sub, sorted, with their sizes.
func listTree(root, sub string) ([]mediaFile, error) {
	var out []mediaFile
	err := filepath.WalkDir(filepath.Join(root, sub), func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, mediaFile{path: p, size: fi.Size()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, err
}

// cmdChange changes about --percent % of the tree's bytes, in three equal
// parts: media files overwritten in place (a region of up to 1 MiB each),
// media files appended to (256 KiB to 2 MiB each) and new media files; and
// --percent % of the small files, half edited (a line appended), half only
// touched (mtime one hour later), so both tools must read them again. The
// same seed gives the same change.
func cmdChange(args []string) error {
	fs := flag.NewFlagSet("change", flag.ExitOnError)
	seed := fs.Uint64("seed", 1, "seed")
	percent := fs.Float64("percent", 1, "share of bytes and of small files to change")
	out := fs.String("out", "", "results file to append the change's stats to")
	round := fs.Int("round", 0, "round number")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: change [flags] DIR")
	}
	root := fs.Arg(0)
	media, err := listTree(root, "media")
	if err != nil {
		return err
	}
	small, err := listTree(root, "text")
	if err != nil {
		return err
	}
	var total int64
	if err := filepath.WalkDir(root, func(_ string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			total += fi.Size()
		}
		return err
	}); err != nil {
		return err
	}
	if len(media) < 2 {
		return fmt.Errorf("%s: too few media files to change", root)
	}
	st := TreeStats{Kind: "change", Seed: *seed}
	r := rand.New(rand.NewPCG(*seed, 1))
	src := rand.NewChaCha8(seedBytes(*seed, "change", 0))
	part := int64(float64(total) * *percent / 100 / 3)
	order := r.Perm(len(media))
	k := 0
	for used := int64(0); used < part && k < len(order); k++ {
		m := media[order[k]]
		n := min(int64(1<<20), m.size/4, part-used)
		off := r.Int64N(m.size - n + 1)
		f, err := os.OpenFile(m.path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		buf := make([]byte, n)
		_, _ = src.Read(buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		used += n
		st.ModifiedFiles++
		st.ModifiedBytes += n
	}
	for used := int64(0); used < part && k < len(order); k++ {
		m := media[order[k]]
		n := min(256<<10+r.Int64N(7<<18), part-used)
		f, err := os.OpenFile(m.path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		if err := writeRandom(f, src, n); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		used += n
		st.AppendedFiles++
		st.AppendedBytes += n
	}
	dir := filepath.Join(root, "media", "new")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for used := int64(0); used < part; {
		n := max(min(logUniform(r, mediaMin, mediaMax), part-used), 1)
		p := filepath.Join(dir, fmt.Sprintf("%04d-%08x.bin", st.AddedFiles, r.Uint32()))
		if err := writeFile(p, 0o644, func(w io.Writer) error { return writeRandom(w, src, n) }); err != nil {
			return err
		}
		used += n
		st.AddedFiles++
		st.AddedBytes += n
	}
	words := vocabulary(rand.New(rand.NewPCG(*seed, 0)))
	nSmall := max(1, int(float64(len(small))**percent/100))
	if len(small) == 0 {
		nSmall = 0
	}
	for i, j := range r.Perm(len(small))[:nSmall] {
		s := small[j]
		if i%2 == 0 {
			f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			if _, err := f.Write(text(r, words, 40+r.Int64N(80))); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			st.SmallEdited++
			continue
		}
		fi, err := os.Stat(s.path)
		if err != nil {
			return err
		}
		t := fi.ModTime().Add(time.Hour)
		if err := os.Chtimes(s.path, t, t); err != nil {
			return err
		}
		st.SmallTouched++
	}
	st.Bytes = st.ModifiedBytes + st.AppendedBytes + st.AddedBytes
	st.Files = st.ModifiedFiles + st.AppendedFiles + st.AddedFiles + st.SmallEdited + st.SmallTouched
	fmt.Printf("change %s: %.1f MB of %.0f MB (%.2f %%): %d media files overwritten in place (%.1f MB), %d appended to (%.1f MB), %d new (%.1f MB); %d small files edited, %d touched\n",
		root, float64(st.Bytes)/1e6, float64(total)/1e6, 100*float64(st.Bytes)/float64(total),
		st.ModifiedFiles, float64(st.ModifiedBytes)/1e6, st.AppendedFiles, float64(st.AppendedBytes)/1e6,
		st.AddedFiles, float64(st.AddedBytes)/1e6, st.SmallEdited, st.SmallTouched)
	return harness.AppendJSON(*out, Result{Kind: st.Kind, Round: *round, Tree: &st})
}
