package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// entry is what verify compares of one path.
type entry struct {
	mode     fs.FileMode // type and permission bits (setuid, setgid, sticky included)
	uid, gid uint32
	size     int64
	mtimeNS  int64
	link     string
}

func lstat(p string) (entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return entry{}, err
	}
	e := entry{mode: fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.uid, e.gid = sys.Uid, sys.Gid
	}
	if fi.Mode().IsRegular() {
		e.size = fi.Size()
		e.mtimeNS = fi.ModTime().UnixNano()
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if e.link, err = os.Readlink(p); err != nil {
			return entry{}, err
		}
	}
	return e, nil
}

// findRoot returns the directory under dir that holds the marker file with
// the content want has.
func findRoot(dir, wantMarker string) (string, error) {
	want, err := os.ReadFile(wantMarker)
	if err != nil {
		return "", err
	}
	var found string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == markerName && d.Type().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, want) {
				found = filepath.Dir(p)
				return filepath.SkipAll
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", fmt.Errorf("no %s like %s under %s", markerName, wantMarker, dir)
	}
	return found, nil
}

// sameContent compares two files byte for byte.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aEnd := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		bEnd := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		if ea != nil && !aEnd {
			return false, ea
		}
		if eb != nil && !bEnd {
			return false, eb
		}
		if aEnd || bEnd {
			return aEnd && bEnd, nil
		}
	}
}

// cmdVerify compares the tree restored somewhere under GOT with the tree
// WANT: the same paths, and for each its type, permission bits, owner,
// symlink target, size and content (byte for byte). Any difference fails.
// Regular files' mtimes (ns) are compared too but only counted: the result
// line says how many differ.
func cmdVerify(args []string) error {
	fl := flag.NewFlagSet("verify", flag.ExitOnError)
	workers := fl.Int("workers", 2, "files compared at once")
	var c common
	c.flags(fl)
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 2 {
		return errors.New("usage: verify [flags] WANT GOT")
	}
	want := fl.Arg(0)
	got, err := findRoot(fl.Arg(1), filepath.Join(want, markerName))
	if err != nil {
		return err
	}
	var (
		problems []string
		files    []string
		nBytes   int64
		mtimes   int
		seen     = map[string]bool{}
		mu       sync.Mutex
	)
	problem := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, a...))
		} else if len(problems) == 20 {
			problems = append(problems, "...")
		}
	}
	err = filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		we, err := lstat(p)
		if err != nil {
			return err
		}
		ge, err := lstat(filepath.Join(got, rel))
		if errors.Is(err, fs.ErrNotExist) {
			problem("%q: missing", rel)
			if d.IsDir() && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if err != nil {
			return err
		}
		if ge.mtimeNS != we.mtimeNS {
			mtimes++
			ge.mtimeNS = we.mtimeNS
		}
		if ge != we {
			problem("%q: want %+v, got %+v", rel, we, ge)
			return nil
		}
		if we.mode.IsRegular() {
			files = append(files, rel)
			nBytes += we.size
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			problem("%q: not in the original", rel)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = parallel(*workers, len(files), func(k int) error {
		same, err := sameContent(filepath.Join(want, files[k]), filepath.Join(got, files[k]))
		if err != nil {
			return err
		}
		if !same {
			problem("%q: content differs", files[k])
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("restored tree %s differs from %s: %s", got, want, strings.Join(problems, "; "))
	}
	fmt.Printf("verified %s against %s: %d paths, %d files, %.1f MB identical (type, mode, owner, size, content, link); %d file mtimes differ\n",
		got, want, len(seen), len(files), float64(nBytes)/1e6, mtimes)
	res := c.result("verify")
	res.Paths, res.InputFiles, res.InputBytes, res.MtimesDiffer = len(seen), len(files), nBytes, mtimes
	return harness.AppendJSON(c.Out, res)
}
