package main

import (
	"bufio"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
)

// Media file sizes: log-uniform between these, like avatars, thumbnails,
// images and short videos.
const (
	minMedia = 20_000
	maxMedia = 16_000_000
)

// mediaSize draws one media file's size.
func mediaSize(r *rand.Rand) int64 {
	lo, hi := math.Log(minMedia), math.Log(maxMedia)
	return int64(math.Exp(lo + r.Float64()*(hi-lo)))
}

// writeRandom writes n random bytes from r to path (mode 0644), creating
// its directory.
func writeRandom(path string, n int64, r *rand.ChaCha8) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mediaPath is the Mastodon-style path of media file i (per kind).
func mediaPath(dir string, i int, r *rand.Rand) string {
	kinds := []string{"media_attachments/files", "media_attachments/files", "media_attachments/files",
		"accounts/avatars", "accounts/headers", "cache/preview_cards/images"}
	ext := []string{"jpg", "png", "mp4", "webp"}
	return filepath.Join(dir, kinds[r.IntN(len(kinds))], fmt.Sprintf("%03d/%03d/%03d", i/1_000_000, i/1000%1000, i%1000),
		"original", fmt.Sprintf("%016x.%s", r.Uint64(), ext[r.IntN(len(ext))]))
}

// fill writes media files into dir, numbered from first, until mb*10^6
// bytes are written; it returns the next number and the bytes written.
func fill(dir string, first int, mb int64, seed uint64) (int, int64, error) {
	r := rand.New(rand.NewPCG(seed, 1))
	var seedb [32]byte
	for i := range seedb {
		seedb[i] = byte(r.Uint32())
	}
	src := rand.NewChaCha8(seedb)
	want, total, i := mb*1_000_000, int64(0), first
	for total < want {
		n := min(mediaSize(r), want-total)
		if err := writeRandom(mediaPath(dir, i, r), n, src); err != nil {
			return i, total, err
		}
		total += n
		i++
	}
	return i, total, nil
}

func cmdGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	seed := fs.Uint64("seed", 1, "seed of the tree")
	mb := fs.Int64("mb", 2048, "size in MB (10^6 bytes)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("want gen [flags] DIR")
	}
	n, total, err := fill(fs.Arg(0), 0, *mb, *seed)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "uploads: %d files, %d bytes\n", n, total)
	return nil
}

// cmdChange is a night on the instance: new media files of about pct/2 % of
// the tree's bytes, and about pct/2 % rewritten in place (media replaced
// under the same name: an edited avatar, a re-fetched preview card).
func cmdChange(args []string) error {
	fs := flag.NewFlagSet("change", flag.ExitOnError)
	seed := fs.Uint64("seed", 2, "seed of the change")
	pct := fs.Float64("pct", 1, "percent of the tree's bytes changed")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("want change [flags] DIR")
	}
	dir := fs.Arg(0)
	var paths []string
	var total int64
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	budget := int64(float64(total) * *pct / 100 / 2)
	r := rand.New(rand.NewPCG(*seed, 2))
	var seedb [32]byte
	for i := range seedb {
		seedb[i] = byte(r.Uint32())
	}
	src := rand.NewChaCha8(seedb)
	var rewritten int64
	files := 0
	for _, i := range r.Perm(len(paths)) {
		if rewritten >= budget {
			break
		}
		info, err := os.Stat(paths[i])
		if err != nil {
			return err
		}
		if info.Size() > 2*budget {
			continue
		}
		if err := writeRandom(paths[i], info.Size(), src); err != nil {
			return err
		}
		rewritten += info.Size()
		files++
	}
	added, addedBytes, err := fill(dir, 1_000_000*int(*seed), max(1, budget/1_000_000), *seed+100)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "change: %d files (%d bytes) rewritten, %d files (%d bytes) added\n",
		files, rewritten, added-1_000_000*int(*seed), addedBytes)
	return nil
}

// cmdRedis prints SET commands in RESP for redis-cli --pipe: keys like
// Sidekiq's and Rails' cache, values of random base64 (LZF in dump.rdb
// barely shrinks them), mb*10^6 bytes of values in all.
func cmdRedis(args []string) error {
	fs := flag.NewFlagSet("redis", flag.ExitOnError)
	seed := fs.Uint64("seed", 1, "seed of keys and values")
	mb := fs.Int64("mb", 100, "MB (10^6 bytes) of values")
	prefix := fs.String("prefix", "cache", "key prefix")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return fmt.Errorf("want redis [flags]")
	}
	r := rand.New(rand.NewPCG(*seed, 3))
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	raw := make([]byte, 3072)
	for i, total := 0, int64(0); total < *mb*1_000_000; i++ {
		n := 96 + r.IntN(len(raw)-96)
		for j := range raw[:n] {
			raw[j] = byte(r.Uint32())
		}
		v := base64.StdEncoding.EncodeToString(raw[:n])
		k := fmt.Sprintf("%s:%d:%016x", *prefix, i, r.Uint64())
		fmt.Fprintf(w, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v)
		total += int64(len(v))
	}
	return w.Flush()
}
