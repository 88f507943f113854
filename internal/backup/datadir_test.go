package backup

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestRelationFileNames(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rel, fork string
		ok, temp  bool
	}{
		{name: "16384", rel: "16384", ok: true},
		{name: "16384.1", rel: "16384", ok: true},
		{name: "16384_fsm", rel: "16384", fork: "fsm", ok: true},
		{name: "16384_vm.12", rel: "16384", fork: "vm", ok: true},
		{name: "16384_init", rel: "16384", fork: "init", ok: true},
		{name: "16384_foo"}, {name: "16384."}, {name: "16384.x"}, {name: "PG_VERSION"}, {name: "12345678901"},
		{name: "t3_16400", temp: true}, {name: "t12_16400_fsm.2", temp: true}, {name: "t_16400"}, {name: "t3_"},
	} {
		rel, fork, ok := parseRelFile(tc.name)
		if rel != tc.rel || fork != tc.fork || ok != tc.ok {
			t.Errorf("parseRelFile(%q) = %q, %q, %t; want %q, %q, %t", tc.name, rel, fork, ok, tc.rel, tc.fork, tc.ok)
		}
		if got := looksLikeTempRel(tc.name); got != tc.temp {
			t.Errorf("looksLikeTempRel(%q) = %t", tc.name, got)
		}
	}
}

// fakeDataDir builds a data directory with one of everything sendDir
// treats specially, and a tablespace outside it.
func fakeDataDir(t *testing.T, systemID uint64) (dataDir, tsDir string) {
	t.Helper()
	dataDir, tsDir = t.TempDir(), t.TempDir()
	ctl := make([]byte, 8192)
	binary.NativeEndian.PutUint64(ctl, systemID)
	binary.NativeEndian.PutUint32(ctl[8:], 1300)
	binary.NativeEndian.PutUint32(ctl[12:], 202209061)
	files := map[string]string{
		"PG_VERSION": "15\n", "postgresql.auto.conf": "x", "global/1260": "g", "global/pg_internal.init": "i",
		"base/5/16384": "main", "base/5/16384_fsm": "fsm", "base/5/16384.1": "seg1",
		"base/5/16390": "unlogged", "base/5/16390_init": "", "base/5/16390_vm": "vm", "base/5/16390.1": "useg1",
		"base/5/t3_16400": "temp", "base/5/pg_internal.init.123": "i", "base/5/pg_filenode.map": "m",
		"base/pgsql_tmp/pgsql_tmp123.0":   "tmp",
		"pg_wal/000000010000000000000001": "wal", "pg_wal/archive_status/000000010000000000000001.done": "",
		"pg_replslot/s/state": "s", "pg_stat_tmp/x": "x", "pg_notify/0000": "n", "pg_subtrans/0000": "s",
		"pg_dynshmem/x": "d", "pg_serial/0000": "s", "pg_snapshots/x": "x", "pg_xact/0000": "keep",
		"postmaster.pid": "1", "postmaster.opts": "o", "backup_label": "old", "backup_label.old": "kept",
		"tablespace_map": "m", "backup_manifest": "{}", "postgresql.auto.conf.tmp": "t", "current_logfiles.tmp": "t",
		"global/pg_control": string(ctl), "pg_tblspc/.keep": "",
	}
	for name, body := range files {
		p := filepath.Join(dataDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dataDir, "pg_tblspc/.keep"))
	if err := syscall.Mkfifo(filepath.Join(dataDir, "base/5/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(tsDir, filepath.Join(dataDir, "pg_tblspc", "16500")); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"PG_15_202209061/5/16501": "ts", "PG_15_202209061/5/16502_init": "", "PG_15_202209061/5/16502": "u", "PG_14_1/5/1": "old"} {
		p := filepath.Join(tsDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dataDir, tsDir
}

func names(es []*entry) []string {
	var out []string
	for _, e := range es {
		n := e.name
		if e.mode.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

// TestWalkExcludes: what sendDir leaves out is absent, the directories
// whose contents it drops are there empty, pg_control is left for the end,
// pg_tblspc is empty (its links travel in tablespace_map).
func TestWalkExcludes(t *testing.T) {
	dataDir, tsDir := fakeDataDir(t, 42)
	w := &walker{root: dataDir, main: true}
	if err := w.walk(""); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PG_VERSION", "backup_label.old", "base/", "base/5/", "base/5/16384", "base/5/16384.1", "base/5/16384_fsm",
		"base/5/16390_init", "base/5/pg_filenode.map", "global/", "global/1260",
		"pg_dynshmem/", "pg_notify/", "pg_replslot/", "pg_serial/", "pg_snapshots/", "pg_stat_tmp/", "pg_subtrans/",
		"pg_tblspc/", "pg_wal/", "pg_wal/archive_status/", "pg_xact/", "pg_xact/0000", "postgresql.auto.conf",
	}
	if got := names(w.out); !slices.Equal(got, want) {
		t.Errorf("walk:\n got %q\nwant %q", got, want)
	}
	if w.skipped != 1 {
		t.Errorf("%d special files skipped, want 1 (the fifo)", w.skipped)
	}
	tss, err := listTablespaces(dataDir)
	if err != nil || len(tss) != 1 || tss[0].OID != 16500 || tss[0].Location != tsDir {
		t.Fatalf("listTablespaces = %+v, %v", tss, err)
	}
	vdir := versionDir(15, 202209061)
	tw := &walker{root: tsDir, prefix: "pg_tblspc/16500/", versionDir: vdir}
	if err := tw.walk(vdir); err != nil {
		t.Fatal(err)
	}
	if got, want := names(tw.out), []string{"PG_15_202209061/5/", "PG_15_202209061/5/16501", "PG_15_202209061/5/16502_init"}; !slices.Equal(got, want) {
		t.Errorf("tablespace walk: got %q, want %q", got, want)
	}
	if got := tw.out[1].manifest; got != "pg_tblspc/16500/PG_15_202209061/5/16501" {
		t.Errorf("manifest path %q", got)
	}
}

// TestCheckLocal: auto picks direct only for this cluster's data directory.
func TestCheckLocal(t *testing.T) {
	dataDir, _ := fakeDataDir(t, 7000000000000000042)
	ctl, err := checkLocal(dataDir, "7000000000000000042")
	if err != nil || ctl.CatalogVersion != 202209061 {
		t.Fatalf("checkLocal = %+v, %v", ctl, err)
	}
	for _, tc := range []struct{ dir, id, why string }{
		{dataDir, "7000000000000000043", "holds system identifier 7000000000000000042, the server reports 7000000000000000043"},
		{filepath.Join(dataDir, "nope"), "7000000000000000042", "no such file"},
		{"", "7000000000000000042", "pg_read_all_settings"},
		{filepath.Join(dataDir, "base"), "7000000000000000042", "pg_control"},
	} {
		_, err := checkLocal(tc.dir, tc.id)
		if !errors.Is(err, ErrNotLocal) || !strings.Contains(err.Error(), tc.why) || strings.Contains(err.Error(), "\n") {
			t.Errorf("checkLocal(%q, %s) = %v, want ErrNotLocal saying %q", tc.dir, tc.id, err, tc.why)
		}
	}
}

func TestTablespaceMap(t *testing.T) {
	m, err := parseTablespaceMap("16500 /srv/ts one\n16501 /srv/a\\\\b\\\nc\n")
	if err != nil || m[16500] != "/srv/ts one" || m[16501] != "/srv/a\\b\nc" || len(m) != 2 {
		t.Errorf("parseTablespaceMap = %v, %v", m, err)
	}
	if err := checkTablespaceMap("16500 /x\n", []tablespaceDir{{OID: 16500}}); err != nil {
		t.Error(err)
	}
	if err := checkTablespaceMap("16500 /x\n16501 /y\n", []tablespaceDir{{OID: 16500}}); err == nil {
		t.Error("a tablespace the server listed but pg_tblspc lacked went unnoticed")
	}
}

// TestWriteTar: members in order with their bytes; a file that shrank is
// padded with zeros to the size listed, one that grew is cut there, one
// that went away is left out; pg_control is read last and fill runs then.
func TestWriteTar(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*readChunk/16+100) // several chunks
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var es []*entry
	add := func(name string, b []byte, size int64) {
		p := write(name, b)
		fi, _ := os.Lstat(p)
		es = append(es, &entry{name: name, manifest: name, path: p, mode: fi.Mode(), size: size, mtime: fi.ModTime()})
	}
	add("big", big, int64(len(big)))
	add("shrunk", []byte("abc"), 2*readChunk+5)
	add("grew", []byte("abcdef"), 3)
	add("empty", nil, 0)
	es = append(es, &entry{name: "gone", path: filepath.Join(dir, "gone"), mode: 0o600, size: 10})
	es = append(es, &entry{name: "sub", mode: os.ModeDir | 0o700})
	ctl := write("pg_control", []byte("control"))
	filled := false
	es = append(es, &entry{name: "global/pg_control", manifest: "global/pg_control", path: ctl, mode: 0o600, last: true},
		&entry{name: "backup_label", manifest: "backup_label", mode: 0o600, fill: func() ([]byte, error) { filled = true; return []byte("label"), nil }})

	var out bytes.Buffer
	sums := map[string]string{}
	st, err := writeTar(t.Context(), &out, es, nil, nil, func(e *entry, size int64, sum []byte) {
		sums[e.name] = hex.EncodeToString(sum)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !filled || st.files != 4 || st.shrunk != 1 || st.vanished != 1 {
		t.Errorf("stats %+v, filled %t", st, filled)
	}
	want := map[string][]byte{
		"big": big, "shrunk": append([]byte("abc"), make([]byte, 2*readChunk+2)...), "grew": []byte("abc"), "empty": {},
		"sub/": nil, "global/pg_control": []byte("control"), "backup_label": []byte("label"),
	}
	tr := tar.NewReader(&out)
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, h.Name)
		b, _ := io.ReadAll(tr)
		if w, ok := want[h.Name]; !ok || !bytes.Equal(b, w) {
			t.Errorf("%s: %d bytes, want %d", h.Name, len(b), len(w))
		}
		if h.Typeflag == tar.TypeReg && sums[h.Name] != manifestSum(b) {
			t.Errorf("%s: manifest checksum is not that of the stored bytes", h.Name)
		}
	}
	if w := []string{"big", "shrunk", "grew", "empty", "sub/", "global/pg_control", "backup_label"}; !slices.Equal(order, w) {
		t.Errorf("members %q, want %q", order, w)
	}
}

// TestWriteTarFailure: a read error fails the tar and leaks nothing.
func TestWriteTarFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var es []*entry
	for range 3 * readWindow {
		es = append(es, &entry{name: "f", path: p, mode: 0o600, size: 1})
	}
	es = append(es, &entry{name: "d", path: dir, mode: 0o600, size: 5}) // a directory: reading fails
	for range 3 * readWindow {
		es = append(es, &entry{name: "f", path: p, mode: 0o600, size: 1})
	}
	if _, err := writeTar(t.Context(), io.Discard, es, nil, nil, func(*entry, int64, []byte) {}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("writeTar = %v, want the read error", err)
	}
}

// manifestSum is the manifest's checksum of b, as PostgreSQL writes it.
func manifestSum(b []byte) string {
	h := newFileHash(manifestAlgorithm)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// TestFileHashCRC32C: PostgreSQL writes a CRC32C checksum as the finished
// CRC's bytes in the machine's order (pg_checksum_final); on amd64
// "123456789" (CRC-32C e3069283) is "839206e3".
func TestFileHashCRC32C(t *testing.T) {
	h := newFileHash("CRC32C")
	h.Write([]byte("123456789"))
	got := hex.EncodeToString(h.Sum(nil))
	want := "839206e3"
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 { // big-endian
		want = "e3069283"
	}
	if got != want {
		t.Errorf("CRC32C of 123456789 = %s, want %s", got, want)
	}
}
