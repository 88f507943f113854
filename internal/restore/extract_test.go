package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pitr-dev/pitr/internal/envelope"
)

// te is one tar entry built by makeTar; typ defaults to a regular file.
type te struct {
	name string
	typ  byte
	body string
	link string
	mode int64
	pax  bool // force PAX headers (long names)
}

var mtime = time.Date(2026, 11, 22, 14, 1, 0, 0, time.UTC)

// makeTar builds an archive; trailer false leaves out the end-of-archive
// blocks, as PostgreSQL before 15 does.
func makeTar(t testing.TB, trailer bool, entries ...te) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: mtime, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o600
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o700
			}
		}
		if e.pax {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil && h.Size > 0 {
			t.Fatal(err)
		}
	}
	if !trailer {
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// newTarget returns parent/pgdata, empty, and parent.
func newTarget(t testing.TB) (dir, parent string) {
	t.Helper()
	parent = t.TempDir()
	dir = filepath.Join(parent, "pgdata")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, parent
}

// snapshot lists everything under parent except dir's contents.
func snapshot(t testing.TB, parent, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(p, dir+string(filepath.Separator)) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, p+" "+fi.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkInside fails if a symbolic link under dir resolves outside it.
func checkInside(t testing.TB, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling or a loop
		}
		realDir, _ := filepath.EvalSymlinks(dir)
		if real != realDir && !strings.HasPrefix(real, realDir+"/") {
			target, _ := os.Readlink(p)
			t.Errorf("%s -> %s resolves outside %s: %s", p, target, dir, real)
		}
		return nil
	})
}

func TestExtractRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries func(parent string) []te
		want    string
	}{
		{"dotdot", func(string) []te { return []te{{name: "../../etc/passwd", body: "x"}} },
			`refusing "../../etc/passwd" in base.tar: path leaves the target directory`},
		{"dotdot inside", func(string) []te {
			return []te{{name: "base/", typ: tar.TypeDir}, {name: "base/../../evil", body: "x"}}
		},
			"path leaves the target directory"},
		{"dotdot dir", func(string) []te { return []te{{name: "../evil/", typ: tar.TypeDir}} },
			"path leaves the target directory"},
		{"absolute", func(parent string) []te { return []te{{name: filepath.Join(parent, "evil"), body: "x"}} },
			"absolute path"},
		{"symlink to /etc", func(string) []te {
			return []te{{name: "etc", typ: tar.TypeSymlink, link: "/etc"}, {name: "etc/pitr-should-not-exist", body: "x"}}
		}, `refusing "etc" in base.tar: symbolic link to absolute path "/etc"`},
		{"symlink up", func(string) []te {
			return []te{{name: "base/", typ: tar.TypeDir}, {name: "base/up", typ: tar.TypeSymlink, link: "../.."}, {name: "base/up/evil", body: "x"}}
		}, "leaves the target directory"},
		{"symlink chain", func(string) []te {
			// Each link stays inside on its own; through "self" the second leaves.
			return []te{{name: "self", typ: tar.TypeSymlink, link: "."}, {name: "esc", typ: tar.TypeSymlink, link: "self/.."}}
		}, `refusing "esc" in base.tar: symbolic link resolves outside the target directory`},
		{"symlink chain then failure", func(string) []te {
			return []te{{name: "self", typ: tar.TypeSymlink, link: "."}, {name: "esc", typ: tar.TypeSymlink, link: "self/.."},
				{name: "fifo", typ: tar.TypeFifo}}
		}, "device or FIFO"},
		{"file through own symlink", func(string) []te {
			return []te{{name: "sub/", typ: tar.TypeDir}, {name: "in", typ: tar.TypeSymlink, link: "sub"}, {name: "in/x", body: "x"}}
		}, `parent "in" is a symbolic link`},
		{"hard link", func(string) []te {
			return []te{{name: "PG_VERSION", body: "15\n"}, {name: "h", typ: tar.TypeLink, link: "PG_VERSION"}}
		}, "hard link"},
		{"hard link out", func(string) []te { return []te{{name: "h", typ: tar.TypeLink, link: "/etc/shadow"}} }, "hard link"},
		{"char device", func(string) []te { return []te{{name: "null", typ: tar.TypeChar}} }, "device or FIFO"},
		{"block device", func(string) []te { return []te{{name: "sda", typ: tar.TypeBlock}} }, "device or FIFO"},
		{"fifo", func(string) []te { return []te{{name: "p", typ: tar.TypeFifo}} }, "device or FIFO"},
		{"huge name", func(string) []te { return []te{{name: strings.Repeat("a/", 3000) + "f", body: "x", pax: true}} },
			"name longer than 4096 bytes"},
		{"huge element", func(string) []te { return []te{{name: strings.Repeat("a", 300), body: "x", pax: true}} },
			"name element longer than 255 bytes"},
		{"duplicate", func(string) []te { return []te{{name: "f", body: "1"}, {name: "f", body: "2"}} }, "exists already"},
		{"dir over file", func(string) []te { return []te{{name: "f", body: "1"}, {name: "f/", typ: tar.TypeDir}} },
			"not a directory"},
		{"file under file", func(string) []te { return []te{{name: "f", body: "1"}, {name: "f/g", body: "2"}} },
			`parent "f" is not a directory`},
		// A file is created by a writer goroutine: its refusal arrives
		// later, and still names it, alone or with entries after it.
		{"file over dir", func(string) []te { return []te{{name: "d/", typ: tar.TypeDir}, {name: "d", body: "1"}} },
			`refusing "d" in base.tar: exists already`},
		{"file over dir, then more", func(string) []te {
			return []te{{name: "d/", typ: tar.TypeDir}, {name: "d", body: "1"}, {name: "e", body: strings.Repeat("x", 3*extractBuf)},
				{name: "f", body: "2"}}
		}, `refusing "d" in base.tar: exists already`},
		{"file over symlink", func(string) []te {
			return []te{{name: "l", typ: tar.TypeSymlink, link: "x"}, {name: "l", body: "1"}}
		}, `refusing "l" in base.tar: exists already`},
		{"symlink over file", func(string) []te {
			return []te{{name: "f", body: "1"}, {name: "f", typ: tar.TypeSymlink, link: "x"}}
		}, `refusing "f" in base.tar: exists already`},
		{"root as file", func(string) []te { return []te{{name: "./", typ: tar.TypeSymlink, link: "x"}} },
			"names the target directory itself"},
		{"sparse", func(string) []te { return []te{{name: "s", typ: tar.TypeCont}} }, "unsupported entry type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, parent := newTarget(t)
			before := snapshot(t, parent, dir)
			data := makeTar(t, true, tc.entries(parent)...)
			_, err := Extract(t.Context(), bytes.NewReader(data), dir, ExtractOptions{Name: "base.tar"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Extract: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") || len(err.Error()) > 400 {
				t.Errorf("error is not one short line: %q", err)
			}
			if after := snapshot(t, parent, dir); !slices.Equal(before, after) {
				t.Errorf("outside of the target changed:\nbefore %q\nafter  %q", before, after)
			}
			checkInside(t, dir)
		})
	}
	if _, err := os.Lstat("/etc/pitr-should-not-exist"); err == nil {
		t.Error("a file was written to /etc")
	}
}

// sparseTar is a PAX GNU sparse 1.0 file of 1 TiB holding one byte, which
// archive/tar would expand to 1 TiB of zeros.
func sparseTar() []byte {
	header := func(name string, typ byte, size int) []byte {
		b := make([]byte, 512)
		copy(b, name)
		copy(b[100:], "0000600\x00")
		copy(b[108:], "0000000\x00")
		copy(b[116:], "0000000\x00")
		copy(b[124:], fmt.Sprintf("%011o\x00", size))
		copy(b[136:], "00000000000\x00")
		b[156] = typ
		copy(b[257:], "ustar\x0000")
		copy(b[148:], "        ")
		sum := 0
		for _, c := range b {
			sum += int(c)
		}
		copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
		return b
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	var pax []byte
	for _, kv := range []string{"GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.name=big", "GNU.sparse.realsize=1099511627776"} {
		n := len(kv) + 3
		n += len(strconv.Itoa(n)) - 1
		pax = append(pax, fmt.Sprintf("%d %s\n", n, kv)...)
	}
	data := append(pad([]byte("1\n1099511627775\n1\n")), pad([]byte("x"))...)
	var out []byte
	out = append(out, header("PaxHeaders/big", tar.TypeXHeader, len(pax))...)
	out = append(out, pad(pax)...)
	out = append(out, header("big", tar.TypeReg, len(data))...)
	out = append(out, data...)
	return append(out, make([]byte, 1024)...)
}

func TestExtractRefusesSparse(t *testing.T) {
	hdr, err := tar.NewReader(bytes.NewReader(sparseTar())).Next()
	if err != nil || hdr.Size != 1<<40 {
		t.Fatalf("the fixture is not a 1 TiB sparse file: %+v, %v", hdr, err)
	}
	dir, _ := newTarget(t)
	_, err = Extract(t.Context(), bytes.NewReader(sparseTar()), dir, ExtractOptions{Name: "base.tar"})
	if err == nil || !strings.Contains(err.Error(), `refusing "big" in base.tar: sparse file`) {
		t.Errorf("Extract = %v", err)
	}
}

// An existing symbolic link in the target is never followed.
func TestExtractExistingSymlink(t *testing.T) {
	for _, entries := range [][]te{
		{{name: "link/x", body: "x"}},
		{{name: "link", body: "x"}},
		{{name: "link/", typ: tar.TypeDir}},
		{{name: "link", typ: tar.TypeSymlink, link: "."}},
	} {
		dir, parent := newTarget(t)
		outside := filepath.Join(parent, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		_, err := Extract(t.Context(), bytes.NewReader(makeTar(t, true, entries...)), dir, ExtractOptions{})
		if err == nil {
			t.Errorf("%s over an existing symbolic link: accepted", entries[0].name)
		}
		if left, _ := os.ReadDir(outside); len(left) > 0 {
			t.Errorf("%s: written through the link: %v", entries[0].name, left)
		}
		if fi, err := os.Stat(outside); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: outside dir changed: %v %v", entries[0].name, fi.Mode(), err)
		}
	}
}

func TestExtract(t *testing.T) {
	dir, _ := newTarget(t)
	data := makeTar(t, true,
		te{name: "PG_VERSION", body: "15\n"},
		te{name: "backup_label", body: "START WAL LOCATION: 0/2000028\n"},
		te{name: "tablespace_map"}, // empty
		te{name: "global/", typ: tar.TypeDir, mode: 0o755},
		te{name: "global/pg_control", body: strings.Repeat("c", 8192)},
		te{name: "base/1/1259", body: "nested before its directory entry"},
		te{name: "base/", typ: tar.TypeDir},
		te{name: "base/1/", typ: tar.TypeDir},
		te{name: "pg_wal/", typ: tar.TypeDir},
		te{name: "./pg_wal/archive_status/", typ: tar.TypeDir}, // as PostgreSQL writes it
		te{name: "readonly", body: "r", mode: 0o444},
		te{name: "wide", body: "w", mode: 0o777},
		te{name: "wal_link", typ: tar.TypeSymlink, link: "pg_wal/archive_status"},
		te{name: "base/1/up", typ: tar.TypeSymlink, link: "../../global"},
		te{name: "dangling", typ: tar.TypeSymlink, link: "not/there"},
	)
	// Data after the tar's end is read too, so a checksum can be checked.
	r := &eofReader{r: io.MultiReader(bytes.NewReader(data), bytes.NewReader(make([]byte, 10240)))}
	owner := (*Owner)(nil)
	if os.Geteuid() == 0 {
		owner = &Owner{UID: 12345, GID: 12346}
	}
	st, err := Extract(t.Context(), r, dir, ExtractOptions{Owner: owner, Name: "base.tar"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.eof {
		t.Error("Extract did not read its input to EOF")
	}
	if st.Files != 7 || st.Bytes != int64(3+30+8192+33+2) {
		t.Errorf("stats = %+v", st)
	}
	for _, tc := range []struct {
		name string
		mode fs.FileMode
		body string
	}{
		{"PG_VERSION", 0o600, "15\n"},
		{"tablespace_map", 0o600, ""},
		{"global", fs.ModeDir | 0o700, ""},
		{"global/pg_control", 0o600, strings.Repeat("c", 8192)},
		{"base", fs.ModeDir | 0o700, ""},
		{"base/1", fs.ModeDir | 0o700, ""},
		{"base/1/1259", 0o600, "nested before its directory entry"},
		{"pg_wal/archive_status", fs.ModeDir | 0o700, ""},
		{"readonly", 0o400, "r"},
		{"wide", 0o600, "w"},
		{"wal_link", fs.ModeSymlink | 0o777, ""},
		{"base/1/up", fs.ModeSymlink | 0o777, ""},
	} {
		p := filepath.Join(dir, tc.name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.name, fi.Mode(), tc.mode)
		}
		if fi.Mode().IsRegular() {
			if got := string(mustRead(t, p)); got != tc.body {
				t.Errorf("%s: content %q", tc.name, got)
			}
		}
		if fi.Mode().Type() != fs.ModeSymlink && !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", tc.name, fi.ModTime(), mtime)
		}
		if st := fi.Sys().(*syscall.Stat_t); owner != nil && (st.Uid != 12345 || st.Gid != 12346) {
			t.Errorf("%s owned by %d:%d", tc.name, st.Uid, st.Gid)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dir, "base/1/up/pg_control")); err != nil || len(got) != 8192 {
		t.Errorf("relative link inside: %v", err)
	}
}

type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

// A stream from PostgreSQL 14 has no end-of-archive blocks.
func TestExtractNoTrailer(t *testing.T) {
	dir, _ := newTarget(t)
	data := makeTar(t, false, te{name: "PG_VERSION", body: "14\n"}, te{name: "global/pg_control", body: "c"})
	st, err := Extract(t.Context(), bytes.NewReader(data), dir, ExtractOptions{})
	if err != nil || st.Files != 2 {
		t.Fatalf("Extract = %+v, %v", st, err)
	}
}

// The checksum of the whole stream is checked, including what follows the
// tar's end, and a truncated stream fails.
func TestExtractChecksum(t *testing.T) {
	data := makeTar(t, true, te{name: "PG_VERSION", body: "15\n"})
	data = append(data, make([]byte, 4096)...)
	codec := &envelope.Codec{}
	var sealed bytes.Buffer
	w, err := codec.Seal(&sealed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sum  string
		want error
	}{
		{w.Sum(), nil},
		{strings.Repeat("0", 64), envelope.ErrChecksum},
	} {
		dir, _ := newTarget(t)
		r, err := codec.Open(bytes.NewReader(sealed.Bytes()), false, tc.sum)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Extract(t.Context(), r, dir, ExtractOptions{Name: "base.tar"})
		r.Close()
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("sha256 %s: Extract = %v, want %v", tc.sum[:8], err, tc.want)
		}
	}

	// Cut inside the second file (a cut between files needs the checksum).
	two := makeTar(t, true, te{name: "a", body: "a"}, te{name: "b", body: strings.Repeat("b", 2000)})
	dir, _ := newTarget(t)
	_, err = Extract(t.Context(), bytes.NewReader(two[:3*512+100]), dir, ExtractOptions{Name: "base.tar"})
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), `"b" from base.tar`) {
		t.Errorf("truncated tar: %v", err)
	}
}

func TestExtractCanceled(t *testing.T) {
	dir, _ := newTarget(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Extract(ctx, bytes.NewReader(makeTar(t, true, te{name: "a", body: "x"})), dir, ExtractOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Extract = %v, want context.Canceled", err)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(makeTar(f, true, te{name: "../../etc/passwd", body: "x"}))
	f.Add(makeTar(f, true, te{name: "etc", typ: tar.TypeSymlink, link: "/etc"}, te{name: "etc/x", body: "x"}))
	f.Add(makeTar(f, true, te{name: "self", typ: tar.TypeSymlink, link: "."}, te{name: "esc", typ: tar.TypeSymlink, link: "self/.."},
		te{name: "esc/x", body: "x"}))
	f.Add(makeTar(f, true, te{name: "a/", typ: tar.TypeDir}, te{name: "a/b", typ: tar.TypeSymlink, link: "../c"},
		te{name: "c/", typ: tar.TypeDir}, te{name: "a/b/d", body: "x"}))
	f.Add(makeTar(f, true, te{name: "h", typ: tar.TypeLink, link: "../x"}))
	f.Add(sparseTar())
	f.Add(makeTar(f, false, te{name: "PG_VERSION", body: "15\n"}, te{name: "./pg_wal/archive_status/", typ: tar.TypeDir}))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, parent := newTarget(t)
		before := snapshot(t, parent, dir)
		_, _ = Extract(context.Background(), bytes.NewReader(data), dir, ExtractOptions{})
		if after := snapshot(t, parent, dir); !slices.Equal(before, after) {
			t.Fatalf("outside of the target changed:\nbefore %q\nafter  %q", before, after)
		}
		checkInside(t, dir)
	})
}

func TestTablespaceMap(t *testing.T) {
	// As PostgreSQL 15 writes it: backslash, CR and LF escaped.
	in := "16384 /srv/ts one\n16385 /srv/back\\\\slash\\\nnewline\n16386  /srv/leading space\n"
	links, err := parseTablespaceMap([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []tablespaceLink{{16384, "/srv/ts one"}, {16385, "/srv/back\\slash\nnewline"}, {16386, " /srv/leading space"}}
	if !slices.Equal(links, want) {
		t.Errorf("parse = %+v, want %+v", links, want)
	}
	if got := string(formatTablespaceMap(links)); got != in {
		t.Errorf("format = %q, want %q", got, in)
	}
	for _, bad := range []string{"16384\n", "16384 \n", " /srv/x\n", "x /srv\n", "16384 /srv", "16384 /srv\\", "99999999999 /srv\n"} {
		if _, err := parseTablespaceMap([]byte(bad)); err == nil {
			t.Errorf("parseTablespaceMap(%q) accepted", bad)
		}
	}
	if links, err := parseTablespaceMap([]byte("\r\n16384 /a\r\n\n")); err != nil || len(links) != 1 {
		t.Errorf("CRLF: %+v, %v", links, err)
	}
}

func TestRewriteTablespaceMap(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tablespace_map")
	mustWrite(t, p, []byte("16384 /srv/old one\n16385 /srv/keep\n"))
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RewriteTablespaceMap(dir, map[uint32]string{16384: "/mnt/new\\dir\nx/"}); err != nil {
		t.Fatal(err)
	}
	if got, want := string(mustRead(t, p)), "16384 /mnt/new\\\\dir\\\nx\n16385 /srv/keep\n"; got != want {
		t.Errorf("tablespace_map = %q, want %q", got, want)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: %v", err)
	}
	for _, m := range []map[uint32]string{{99999: "/x"}, {16384: "relative"}} {
		if err := RewriteTablespaceMap(dir, m); err == nil {
			t.Errorf("RewriteTablespaceMap(%v) accepted", m)
		}
	}
	empty := t.TempDir()
	if err := RewriteTablespaceMap(empty, nil); err != nil {
		t.Errorf("no tablespace_map, no mapping: %v", err)
	}
	if err := RewriteTablespaceMap(empty, map[uint32]string{16384: "/x"}); err == nil {
		t.Error("no tablespace_map but a mapping: accepted")
	}
}

// TestExtractLargeFile: a file of several write-behind intervals and a
// tail, read in small pieces (iotest.HalfReader), comes
// out whole; the writeback requests it queues are only hints.
func TestExtractLargeFile(t *testing.T) {
	big := make([]byte, 2*writeBehindEvery+extractBuf/3)
	for i := range big {
		big[i] = byte(i * 7 / 13)
	}
	data := makeTar(t, true, te{name: "base/1/16384", body: string(big)}, te{name: "PG_VERSION", body: "15\n"})
	dir, _ := newTarget(t)
	st, err := Extract(t.Context(), iotest.HalfReader(bytes.NewReader(data)), dir, ExtractOptions{Name: "base.tar"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "base/1/16384"))
	if err != nil || !bytes.Equal(got, big) || st.Files != 2 || st.Bytes != int64(len(big))+3 {
		t.Fatalf("read back %d bytes (%v), equal %v; stats %+v", len(got), err, bytes.Equal(got, big), st)
	}
}

// TestExtractLargeFiles writes files of many buffers, past the writeback
// step, on several writers at once, and checks every byte, the mode and
// the time of each.
func TestExtractLargeFiles(t *testing.T) {
	dir, _ := newTarget(t)
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := map[string]string{}
	var entries []te
	for i, size := range []int{writeBehindEvery + extractBuf/3, 5*extractBuf + 1, extractBuf, 1, 3 * writeBehindEvery} {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("base/1/%d", 16384+i)
		bodies[name] = string(b)
		entries = append(entries, te{name: name, body: string(b)})
	}
	st, err := Extract(t.Context(), bytes.NewReader(makeTar(t, true, entries...)), dir, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != len(bodies) {
		t.Errorf("stats = %+v", st)
	}
	for name, body := range bodies {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != body {
			t.Errorf("%s: %d bytes differ from the archived %d", name, len(got), len(body))
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o600 || !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: mode %v, mtime %v; want 0600, %v", name, fi.Mode(), fi.ModTime(), mtime)
		}
	}
}

// TestExtractCutInLargeFile fails, naming the file, an archive cut inside
// a file after several of its buffers were written.
func TestExtractCutInLargeFile(t *testing.T) {
	dir, _ := newTarget(t)
	data := makeTar(t, true, te{name: "big", body: strings.Repeat("x", 6*extractBuf)})
	_, err := Extract(t.Context(), bytes.NewReader(data[:512+4*extractBuf+100]), dir, ExtractOptions{Name: "base.tar"})
	if err == nil || !strings.Contains(err.Error(), `"big"`) {
		t.Fatalf("cut archive: %v", err)
	}
}
