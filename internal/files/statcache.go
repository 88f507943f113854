package files

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/pitr-dev/pitr/internal/catalog"
)

// The stat cache lets a snapshot skip reading files that did not change
// since the set's last snapshot on this host, as restic does with its
// parent snapshot. The host holds only age recipients and cannot read the
// previous manifest, so it keeps what it needs locally instead: for each
// regular file of the last snapshot, its lstat (size, mtime and ctime in
// ns, inode, device) and its chunk references. A file whose lstat is
// unchanged, and whose every chunk the repository's index still lists,
// takes its cached references without being opened.
//
// The file sits in the chunk index cache directory (one per repository),
// one per set: stat-<set>.cache, mode 0600 in a 0700 directory. It is
// written sorted by path as the walk emits them, and read with a cursor
// that moves forward with the walk, so memory stays bounded whatever the
// number of files. It is written to a temp file, fsynced and renamed into
// place only once the snapshot's entry is stored.
//
// For a secrets set the cache holds chunk IDs and the plaintext SHA-256
// of each chunk (as the manifest does, unencrypted here): that is
// acceptable because it lives, mode 0600, on the host that holds the
// files themselves in the clear.
//
// The cache is an optimisation only: a missing, truncated, corrupt or
// foreign one (another repository, dedup key or set) is ignored, with a
// debug log line, and the files are read. Every record carries a CRC, so
// damage is found before a record is used; what a cache can get wrong is
// only what lstat equality implies (a file rewritten with the same size,
// mtime, ctime, inode and device), as with restic. To keep even that
// narrow, a file whose mtime or ctime is within racyWindow of the walk's
// start is not cached: written again in the same clock tick after it was
// read, it would show the same times.

// statMagic starts a stat cache file; the version is in it.
const statMagic = "pitr stat cache 1\n"

// maxStatRecord bounds one record (a file of about 4 TiB of chunks).
const maxStatRecord = 256 << 20

// racyWindow: see above.
const racyWindow = 2e9 // ns

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// statHeader is the first record: whose cache it is.
type statHeader struct {
	KeyID string `json:"key_id"` // the dedup key's fingerprint
	Repo  string `json:"repo"`   // the cache directory, one per repository
	Set   string `json:"set"`
}

// statEntry is one cached file.
type statEntry struct {
	path               string
	size, mtime, ctime int64
	ino, dev           uint64
	chunks             []catalog.ChunkRef
}

// statCachePath is set's stat cache in cacheDir ("" if no cache).
func statCachePath(cacheDir, set string) string {
	if cacheDir == "" {
		return ""
	}
	return filepath.Join(cacheDir, "stat-"+set+".cache")
}

func statHeaderFor(cacheDir, set, keyID string) statHeader {
	if abs, err := filepath.Abs(cacheDir); err == nil {
		cacheDir = abs
	}
	return statHeader{KeyID: keyID, Repo: cacheDir, Set: set}
}

// errStatCache is a stat cache that cannot be used (the reason wrapped).
var errStatCache = errors.New("stat cache unusable")

// statReader reads a stat cache forward, in step with the walk.
type statReader struct {
	f    *os.File
	br   *bufio.Reader
	cur  statEntry
	have bool  // cur holds the next entry
	err  error // why reading stopped (io.EOF at the end)
}

// openStatCache opens the cache at p written for h. A cache that is
// missing or not h's gives nil and the reason.
func openStatCache(p string, h statHeader) (*statReader, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	c := &statReader{f: f, br: bufio.NewReaderSize(f, 256<<10)}
	magic := make([]byte, len(statMagic))
	if _, err := io.ReadFull(c.br, magic); err != nil || string(magic) != statMagic {
		f.Close()
		return nil, fmt.Errorf("%w: not a stat cache of this version", errStatCache)
	}
	rec, err := c.record()
	if err != nil {
		f.Close()
		return nil, err
	}
	var got statHeader
	if err := json.Unmarshal(rec, &got); err != nil || got != h {
		f.Close()
		return nil, fmt.Errorf("%w: written for another repository, dedup key or set", errStatCache)
	}
	return c, nil
}

// record reads one record and checks its CRC.
func (c *statReader) record() ([]byte, error) {
	n, err := binary.ReadUvarint(c.br)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil || n > maxStatRecord {
		return nil, fmt.Errorf("%w: truncated or damaged record", errStatCache)
	}
	buf := make([]byte, n+4)
	if _, err := io.ReadFull(c.br, buf); err != nil {
		return nil, fmt.Errorf("%w: truncated record", errStatCache)
	}
	if crc32.Checksum(buf[:n], crcTable) != binary.LittleEndian.Uint32(buf[n:]) {
		return nil, fmt.Errorf("%w: damaged record (CRC)", errStatCache)
	}
	return buf[:n], nil
}

// next reads the entry after cur into cur.
func (c *statReader) next() {
	rec, err := c.record()
	if err != nil {
		c.have, c.err = false, err
		return
	}
	e, err := decodeStatEntry(rec, c.cur.path)
	if err == nil && c.have && e.path <= c.cur.path {
		err = fmt.Errorf("%w: paths out of order", errStatCache)
	}
	if err != nil {
		c.have, c.err = false, err
		return
	}
	c.cur, c.have = e, true
}

// find returns the cached entry for path p, or nil. Calls must come in
// increasing path order (the walk's): the cursor only moves forward.
func (c *statReader) find(p string) *statEntry {
	if c == nil {
		return nil
	}
	if !c.have && c.err == nil {
		c.next()
	}
	for c.have && c.cur.path < p {
		c.next()
	}
	if c.have && c.cur.path == p {
		e := c.cur
		return &e
	}
	return nil
}

// failure is why the cache stopped being read before its end (nil if it
// did not).
func (c *statReader) failure() error {
	if c == nil || c.err == nil || c.err == io.EOF {
		return nil
	}
	return c.err
}

func (c *statReader) close() {
	if c != nil {
		c.f.Close()
	}
}

func decodeStatEntry(rec []byte, prev string) (statEntry, error) {
	d := statDecoder{b: rec}
	shared := d.uvarint()
	suffix := d.bytes(d.uvarint())
	var e statEntry
	if d.err == nil && shared > uint64(len(prev)) {
		d.err = errStatCache
	}
	if d.err == nil {
		e.path = prev[:shared] + string(suffix)
	}
	e.size, e.mtime, e.ctime = d.varint(), d.varint(), d.varint()
	e.ino, e.dev = d.uvarint(), d.uvarint()
	n := d.uvarint()
	if n > uint64(len(rec))/65 {
		d.err = errStatCache
	}
	var total int64
	for i := uint64(0); i < n && d.err == nil; i++ {
		id, sum := d.bytes(32), d.bytes(32)
		size := int64(d.uvarint())
		e.chunks = append(e.chunks, catalog.ChunkRef{ID: hex.EncodeToString(id), SHA256: hex.EncodeToString(sum), Size: size})
		total += size
	}
	if d.err != nil || len(d.b) != 0 || total != e.size || e.size < 0 {
		return statEntry{}, fmt.Errorf("%w: damaged entry", errStatCache)
	}
	return e, nil
}

type statDecoder struct {
	b   []byte
	err error
}

func (d *statDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errStatCache
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *statDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errStatCache
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *statDecoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errStatCache
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

// statWriter writes a new stat cache beside the old one; commit puts it
// in place.
type statWriter struct {
	path string
	f    *os.File
	bw   *bufio.Writer
	prev string
	rec  []byte
	n    int64 // entries written
	err  error
}

// createStatCache starts a new cache for h at p.
func createStatCache(p string, h statHeader) (*statWriter, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".stat-*.tmp")
	if err != nil {
		return nil, err
	}
	w := &statWriter{path: p, f: f, bw: bufio.NewWriterSize(f, 256<<10)}
	hb, _ := json.Marshal(h)
	_, w.err = w.bw.WriteString(statMagic)
	w.frame(hb)
	return w, w.err
}

func (w *statWriter) frame(payload []byte) {
	if w.err != nil {
		return
	}
	var hdr [binary.MaxVarintLen64]byte
	if _, err := w.bw.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(payload)))]); err != nil {
		w.err = err
		return
	}
	if _, err := w.bw.Write(payload); err != nil {
		w.err = err
		return
	}
	w.err = binary.Write(w.bw, binary.LittleEndian, crc32.Checksum(payload, crcTable))
}

// add records e. Entries out of path order, or with chunk references that
// are not hex SHA-256s, are left out (the next walk reads those files).
func (w *statWriter) add(e *statEntry) {
	if w == nil || w.err != nil || (w.n > 0 && e.path <= w.prev) {
		return
	}
	shared := 0
	for shared < len(e.path) && shared < len(w.prev) && e.path[shared] == w.prev[shared] {
		shared++
	}
	b := w.rec[:0]
	b = binary.AppendUvarint(b, uint64(shared))
	b = binary.AppendUvarint(b, uint64(len(e.path)-shared))
	b = append(b, e.path[shared:]...)
	b = binary.AppendVarint(b, e.size)
	b = binary.AppendVarint(b, e.mtime)
	b = binary.AppendVarint(b, e.ctime)
	b = binary.AppendUvarint(b, e.ino)
	b = binary.AppendUvarint(b, e.dev)
	b = binary.AppendUvarint(b, uint64(len(e.chunks)))
	for _, c := range e.chunks {
		var ok bool
		if b, ok = appendHex32(b, c.ID); !ok {
			return
		}
		if b, ok = appendHex32(b, c.SHA256); !ok {
			return
		}
		b = binary.AppendUvarint(b, uint64(c.Size))
	}
	w.rec = b
	w.frame(b)
	w.prev = e.path
	w.n++
}

func appendHex32(b []byte, s string) ([]byte, bool) {
	if len(s) != 64 {
		return b, false
	}
	out, err := hex.AppendDecode(b, []byte(s))
	if err != nil {
		return b, false
	}
	return out, true
}

// commit flushes and fsyncs the new cache and renames it into place.
func (w *statWriter) commit() error {
	if w == nil {
		return nil
	}
	err := w.err
	if err == nil {
		err = w.bw.Flush()
	}
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.path)
	}
	if err != nil {
		_ = os.Remove(w.f.Name())
		return err
	}
	if d, err := os.Open(filepath.Dir(w.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// abort drops the new cache, leaving the old one.
func (w *statWriter) abort() {
	if w == nil {
		return
	}
	w.f.Close()
	_ = os.Remove(w.f.Name())
}
