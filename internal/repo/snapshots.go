package repo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"filippo.io/age"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
)

// DamagedSnapshot names a file snapshot whose entry exists but cannot be
// read.
type DamagedSnapshot struct {
	Set    string `json:"set"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// ListSnapshots returns the complete file snapshots of set (every set when
// set is ""), oldest first by start time, then id, then set, and the
// damaged entries it skipped (never nil), by set and id: one bad entry
// does not hide the others.
func (r *Repo) ListSnapshots(ctx context.Context, set string) ([]*catalog.Snapshot, []DamagedSnapshot, error) {
	prefix := catalog.SnapshotsPrefix
	if set != "" {
		if !catalog.ValidSetName(set) {
			return nil, nil, fmt.Errorf("file set name %q: want lower-case letters, digits, _ and -", set)
		}
		prefix = catalog.SnapshotSetPrefix(set)
	}
	type ref struct{ set, id string }
	var refs []ref
	err := r.st.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if s, id, ok := catalog.ParseSnapshotEntryKey(oi.Key); ok {
			refs = append(refs, ref{s, id})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list file snapshots: %w", err)
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].set != refs[j].set {
			return refs[i].set < refs[j].set
		}
		return refs[i].id < refs[j].id
	})
	out := make([]*catalog.Snapshot, 0, len(refs))
	damaged := []DamagedSnapshot{}
	for _, x := range refs {
		s, reason, err := r.readSnapshot(ctx, x.set, x.id)
		if err != nil {
			return nil, nil, err
		}
		if reason != "" {
			damaged = append(damaged, DamagedSnapshot{Set: x.set, ID: x.id, Reason: reason})
			continue
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.StartTime.Equal(b.StartTime) {
			return a.StartTime.Before(b.StartTime)
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Set < b.Set
	})
	return out, damaged, nil
}

// Snapshot reads one file snapshot's entry; id "latest" (or "") picks
// the newest readable one of set.
func (r *Repo) Snapshot(ctx context.Context, set, id string) (*catalog.Snapshot, error) {
	if !catalog.ValidSetName(set) {
		return nil, fmt.Errorf("file set name %q: want lower-case letters, digits, _ and -", set)
	}
	if id == "" || id == "latest" {
		all, _, err := r.ListSnapshots(ctx, set)
		if err != nil {
			return nil, err
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("no snapshots of file set %s in the repository", set)
		}
		return all[len(all)-1], nil
	}
	if !catalog.ValidBackupID(id) {
		return nil, fmt.Errorf("%q is not a snapshot id (want e.g. 20261122T020000Z)", id)
	}
	s, reason, err := r.readSnapshot(ctx, set, id)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		key, _ := catalog.SnapshotEntryKey(set, id)
		return nil, fmt.Errorf("snapshot %s of %s: %w %s: %s", id, set, ErrDamaged, key, reason)
	}
	return s, nil
}

// readSnapshot returns an entry, or why it is damaged, or a storage error.
func (r *Repo) readSnapshot(ctx context.Context, set, id string) (s *catalog.Snapshot, damaged string, err error) {
	key, err := catalog.SnapshotEntryKey(set, id)
	if err != nil {
		return nil, "", err
	}
	rc, err := r.st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", fmt.Errorf("snapshot %s of %s: no such complete snapshot", id, set)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read snapshot %s of %s: %w", id, set, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20+1))
	if err != nil {
		return nil, "", fmt.Errorf("read snapshot %s of %s: %w", id, set, err)
	}
	if len(data) > 1<<20 {
		return nil, "larger than 1 MiB", nil
	}
	s, err = catalog.UnmarshalSnapshot(data)
	if err != nil {
		return nil, err.Error(), nil
	}
	if s.ID != id || s.Set != set {
		return nil, fmt.Sprintf("entry names %s of %s", s.ID, s.Set), nil
	}
	// The entry is plaintext: it must not point a restore at another
	// object than its own manifest.
	if want, _ := catalog.ManifestKey(set, id, s.Encrypted); s.Manifest.Key != want {
		return nil, fmt.Sprintf("manifest key %q is not the snapshot's (%s)", s.Manifest.Key, want), nil
	}
	if len(s.Manifest.SHA256) != 64 {
		return nil, "manifest sha256 is not 64 hex digits", nil
	}
	return s, "", nil
}

// MaxManifestLine bounds one manifest line (one path with its chunk
// list: about 160 bytes a chunk, so a file of several TB).
const MaxManifestLine = 512 << 20

// Manifest is a snapshot's manifest, read whole and verified against the
// entry's SHA-256 before OpenManifest returns: a restore never acts on an
// entry that has not been checked. The verified plaintext waits in an
// unlinked temporary file sealed (zstd, age) under a key that lives only
// in this process, so memory stays bounded for millions of paths, nothing
// readable reaches the disk (a secrets set's names and metadata included),
// and nothing is left behind when the process dies.
type Manifest struct {
	Header  catalog.ManifestHeader
	Entries int64 // lines after the header
	f       *os.File
	codec   *envelope.Codec
	sum     string
}

// OpenManifest downloads, verifies and spools the manifest of s. The
// repository's codec must hold the age identity when s is encrypted.
// Close the Manifest to release the spool.
func (r *Repo) OpenManifest(ctx context.Context, s *catalog.Snapshot) (*Manifest, error) {
	want, err := catalog.ManifestKey(s.Set, s.ID, s.Encrypted)
	if err != nil {
		return nil, err
	}
	if s.Manifest.Key != want {
		return nil, fmt.Errorf("snapshot %s of %s: manifest key %q is not the snapshot's", s.ID, s.Set, s.Manifest.Key)
	}
	rc, err := r.OpenSealed(ctx, want, s.Encrypted, s.Manifest.SHA256)
	if err != nil {
		return nil, fmt.Errorf("open manifest of snapshot %s of %s: %w", s.ID, s.Set, err)
	}
	defer rc.Close()
	m, err := newManifestSpool()
	if err != nil {
		return nil, err
	}
	if err := m.fill(ctx, rc, s); err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("read manifest of snapshot %s of %s: %w", s.ID, s.Set, err)
	}
	return m, nil
}

func newManifestSpool() (*Manifest, error) {
	id, err := crypto.NewIdentity()
	if err != nil {
		return nil, fmt.Errorf("manifest spool key: %w", err)
	}
	f, err := os.CreateTemp("", "pitr-manifest-*")
	if err != nil {
		return nil, fmt.Errorf("manifest spool: %w", err)
	}
	// Unlinked at once: only this process's descriptor reaches it.
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("manifest spool: %w", err)
	}
	codec := &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}, Level: 1}
	return &Manifest{f: f, codec: codec}, nil
}

// fill reads the header, then copies the entry lines into the spool; the
// plaintext's SHA-256 is checked by src when it reaches its end.
func (m *Manifest) fill(ctx context.Context, src io.Reader, s *catalog.Snapshot) error {
	br := bufio.NewReaderSize(src, 1<<20)
	line, err := readLine(br)
	if errors.Is(err, io.EOF) {
		return errors.New("no header line")
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(line, &m.Header); err != nil {
		return fmt.Errorf("header: not valid JSON: %v", err)
	}
	if m.Header.Format != catalog.FormatVersion {
		return fmt.Errorf("%w: manifest format %d", catalog.ErrFormat, m.Header.Format)
	}
	if m.Header.Set != s.Set || m.Header.ID != s.ID {
		return fmt.Errorf("header names snapshot %s of %s", m.Header.ID, m.Header.Set)
	}
	bw := bufio.NewWriterSize(m.f, 1<<20)
	sealer, err := m.codec.Seal(bw)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			break // src verified the whole manifest
		}
		if err != nil {
			return err
		}
		if _, err := sealer.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("manifest spool: %w", err)
		}
		m.Entries++
	}
	if err := sealer.Close(); err != nil {
		return fmt.Errorf("manifest spool: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("manifest spool: %w", err)
	}
	m.sum = sealer.Sum()
	return nil
}

// readLine returns the next line without its newline; io.EOF only at the
// end with nothing read. A last line without a newline is a line.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > MaxManifestLine {
			return nil, fmt.Errorf("a line longer than %d bytes", MaxManifestLine)
		}
		switch {
		case err == nil:
			buf = append(buf, frag[:len(frag)-1]...)
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			buf = append(buf, frag...)
		case errors.Is(err, io.EOF):
			buf = append(buf, frag...)
			if len(buf) == 0 {
				return nil, io.EOF
			}
			return buf, nil
		default:
			return nil, err
		}
	}
}

// Scan calls fn with every entry, in manifest order; it may be called
// again (each call reads the spool from its start). It fails on an entry
// that is not valid JSON, or on paths out of byte order (the manifest
// lists each path once, sorted, parents first), and stops at the first
// error fn returns. The entry passed to fn is fn's to keep.
func (m *Manifest) Scan(ctx context.Context, fn func(e *catalog.ManifestEntry) error) error {
	if _, err := m.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("manifest spool: %w", err)
	}
	pr, err := m.codec.Open(bufio.NewReaderSize(m.f, 1<<20), true, m.sum)
	if err != nil {
		return fmt.Errorf("manifest spool: %w", err)
	}
	defer pr.Close()
	br := bufio.NewReaderSize(pr, 1<<20)
	var prev string
	for n := int64(1); ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			if n-1 != m.Entries {
				return fmt.Errorf("manifest spool: %d entries, want %d", n-1, m.Entries)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("manifest spool: %w", err)
		}
		e := new(catalog.ManifestEntry)
		if err := json.Unmarshal(line, e); err != nil {
			return fmt.Errorf("manifest entry %d: not valid JSON: %v", n, err)
		}
		if n > 1 && e.Path <= prev {
			return fmt.Errorf("manifest entry %d: paths out of order or repeated", n)
		}
		prev = e.Path
		if err := fn(e); err != nil {
			return err
		}
	}
}

// Close releases the spool.
func (m *Manifest) Close() error { return m.f.Close() }

// MaxRunGap is the most bytes ReadBlobRun reads and drops between two
// chunks of one run: cheaper than another request.
const MaxRunGap = 1 << 20

// ReadBlobRun reads chunks stored in order in one pack (each starting at
// or after the previous one's end, at most MaxRunGap later) with one
// ranged GET, and calls fn with each one's plaintext, verified against
// sums[i] (the manifest's record), in order. A restore reads a file's
// chunks this way: the chunks of a large file lie end to end in a few
// packs, so it costs a few requests, not one a chunk. The pack's key is
// read from its header once per Repo (ReadBlob says more).
func (r *Repo) ReadBlobRun(ctx context.Context, refs []BlobRef, encrypted bool, sums []string, fn func(i int, data []byte) error) error {
	_ = encrypted // the pack's header decides
	if len(refs) == 0 {
		return nil
	}
	if len(sums) != len(refs) {
		return fmt.Errorf("read chunks: %d sums for %d chunks", len(sums), len(refs))
	}
	first, last := refs[0], refs[len(refs)-1]
	for i := 1; i < len(refs); i++ {
		prev, b := refs[i-1], refs[i]
		if b.Pack != first.Pack || b.Offset < prev.Offset+prev.Length || b.Offset-(prev.Offset+prev.Length) > MaxRunGap {
			return fmt.Errorf("read chunks: chunk %.16s does not follow chunk %.16s in pack %.16s", b.ID, prev.ID, prev.Pack)
		}
	}
	for _, b := range refs {
		if b.Offset < b.Header || b.Length <= 0 || b.Size < 0 || b.Size > maxBlobPlain {
			return fmt.Errorf("chunk %.16s in pack %.16s: %w: index gives offset %d, length %d, size %d (header %d bytes)", b.ID, b.Pack, ErrDamaged, b.Offset, b.Length, b.Size, b.Header)
		}
	}
	key, err := catalog.PackKey(first.Pack)
	if err != nil {
		return err
	}
	aead, err := r.packAEAD(ctx, first)
	if err != nil {
		return fmt.Errorf("chunk %.16s: %w", first.ID, err)
	}
	rc, err := r.st.GetRange(ctx, key, first.Offset, last.Offset+last.Length-first.Offset)
	if err != nil {
		return fmt.Errorf("read chunks from pack %.16s: %w", first.Pack, err)
	}
	defer rc.Close()
	pos := first.Offset
	var buf []byte
	for i, ref := range refs {
		if gap := ref.Offset - pos; gap > 0 {
			if _, err := io.CopyN(io.Discard, rc, gap); err != nil {
				return fmt.Errorf("read chunks from pack %.16s: %w", ref.Pack, err)
			}
		}
		if int64(cap(buf)) < ref.Length {
			buf = make([]byte, ref.Length)
		}
		sealed := buf[:ref.Length]
		if _, err := io.ReadFull(rc, sealed); err != nil {
			return fmt.Errorf("read chunk %.16s from pack %.16s: %w", ref.ID, ref.Pack, err)
		}
		data, err := openBlob(sealed, ref, aead, sums[i])
		if err != nil {
			return err
		}
		pos = ref.Offset + ref.Length
		if err := fn(i, data); err != nil {
			return err
		}
	}
	return nil
}
