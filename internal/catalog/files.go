package catalog

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// File snapshots (issue 10), format 1. Layout:
//
//	files/dedup-key.json                          the dedup key's fingerprint, written once
//	files/packs/<ss>/<sha256>.pack                packs: a header (the age-wrapped pack key), then
//	                                              sealed chunks end to end; <sha256> is the pack's
//	                                              stored bytes' (ciphertext) SHA-256
//	files/index/<sha256>.json                     one pack's index: which chunk IDs it holds
//	                                              where; plaintext, no secret; <sha256> of its content
//	files/snapshots/<set>/<id>/reserved.json      reserves the id (create-only), written first
//	files/snapshots/<set>/<id>/manifest.<ext>     the snapshot's manifest, sealed (JSON lines)
//	files/snapshots/<set>/<id>/snapshot.json      the snapshot's entry, plaintext, written last
//
// A chunk ID is HMAC-SHA-256 of the chunk's plaintext under the
// repository's dedup key: a host that holds only age recipients and the
// dedup key can tell which chunks the repository has (from the index)
// without decrypting anything, and nothing stored names a plaintext hash.
// The manifest (sealed) lists each file's chunk IDs with each chunk's
// plaintext SHA-256, checked on restore.

const filesRoot = "files/"

// Listing prefixes of the file-snapshot objects.
const (
	FilesPrefix     = filesRoot
	PacksPrefix     = filesRoot + "packs/"
	IndexPrefix     = filesRoot + "index/"
	SnapshotsPrefix = filesRoot + "snapshots/"
)

// DedupKeyIDKey is the object holding the dedup key's fingerprint.
const DedupKeyIDKey = filesRoot + "dedup-key.json"

// SnapshotEntryName is the name of a snapshot's entry object, written last.
const SnapshotEntryName = "snapshot.json"

// DedupKeyID is the content of files/dedup-key.json: the fingerprint of the
// dedup key every host snapshotting into the repository must share
// (HMAC-SHA-256 of a fixed label under the key; it reveals nothing of the
// key).
type DedupKeyID struct {
	Format  int       `json:"format"`
	KeyID   string    `json:"key_id"` // hex
	Created time.Time `json:"created"`
	Host    string    `json:"host"`
}

// PackKey returns the key of a pack whose stored bytes have SHA-256 sum.
func PackKey(sum string) (string, error) {
	if len(sum) != 64 || !isHex(sum) {
		return "", fmt.Errorf("pack sha256 %q: want 64 hex digits", sum)
	}
	return PacksPrefix + sum[:2] + "/" + sum + ".pack", nil
}

// ParsePackKey returns the SHA-256 a pack key names.
func ParsePackKey(key string) (sum string, ok bool) {
	rest, ok := strings.CutPrefix(key, PacksPrefix)
	if !ok || len(rest) != 2+1+64+len(".pack") || rest[2] != '/' || !strings.HasSuffix(rest, ".pack") {
		return "", false
	}
	sum = rest[3 : 3+64]
	if !isHex(sum) || sum[:2] != rest[:2] {
		return "", false
	}
	return sum, true
}

// IndexKey returns the key of an index object whose content has SHA-256 sum.
func IndexKey(sum string) (string, error) {
	if len(sum) != 64 || !isHex(sum) {
		return "", fmt.Errorf("index sha256 %q: want 64 hex digits", sum)
	}
	return IndexPrefix + sum + ".json", nil
}

// ParseIndexKey returns the SHA-256 an index key names.
func ParseIndexKey(key string) (sum string, ok bool) {
	rest, ok := strings.CutPrefix(key, IndexPrefix)
	if !ok || len(rest) != 64+len(".json") || !strings.HasSuffix(rest, ".json") || !isHex(rest[:64]) {
		return "", false
	}
	return rest[:64], true
}

// PackIndex is one index object: the chunks one pack holds. It is
// plaintext and names no plaintext hash (chunk IDs are keyed).
type PackIndex struct {
	Format int    `json:"format"`
	Pack   string `json:"pack"`   // the pack's SHA-256 (its key: PackKey)
	Size   int64  `json:"size"`   // the pack's stored bytes
	Header int64  `json:"header"` // its header's bytes (4 + the wrapped pack key's; 4: not encrypted)
	Blobs  []Blob `json:"blobs"`  // in pack order, after the header
}

// Blob is one sealed chunk inside a pack.
type Blob struct {
	ID     string `json:"id"`     // chunk ID: hex HMAC-SHA-256 of the plaintext under the dedup key
	Offset int64  `json:"offset"` // of its sealed bytes in the pack
	Length int64  `json:"length"` // sealed bytes (encrypted: nonce, ciphertext and tag)
	Size   int64  `json:"size"`   // plaintext bytes
}

// MarshalPackIndex returns an index object's content.
func MarshalPackIndex(ix *PackIndex) []byte {
	b, _ := json.Marshal(ix)
	return append(b, '\n')
}

// UnmarshalPackIndex parses and checks an index object.
func UnmarshalPackIndex(data []byte) (*PackIndex, error) {
	var ix PackIndex
	if err := json.Unmarshal(data, &ix); err != nil {
		return nil, fmt.Errorf("pack index: not valid JSON: %v", err)
	}
	if ix.Format != FormatVersion {
		return nil, fmt.Errorf("%w: pack index format %d", ErrFormat, ix.Format)
	}
	if _, err := PackKey(ix.Pack); err != nil {
		return nil, fmt.Errorf("pack index: %w", err)
	}
	if ix.Header < 4 || ix.Header > ix.Size {
		return nil, fmt.Errorf("pack index of %.16s: bad header length %d", ix.Pack, ix.Header)
	}
	end := ix.Header
	for _, b := range ix.Blobs {
		if len(b.ID) != 64 || !isHex(b.ID) || b.Offset < end || b.Length <= 0 || b.Size < 0 || b.Offset+b.Length > ix.Size {
			return nil, fmt.Errorf("pack index of %.16s: bad blob %+v", ix.Pack, b)
		}
		end = b.Offset + b.Length
	}
	return &ix, nil
}

// Snapshot is a file snapshot's entry (snapshot.json): plaintext, written
// after the manifest and every pack it needs are stored. It names no path
// and no content: those are in the sealed manifest.
type Snapshot struct {
	ID          string    `json:"id"`
	Format      int       `json:"format"`
	Set         string    `json:"set"`
	Kind        string    `json:"kind"` // uploads or secrets
	Host        string    `json:"host"`
	PitrVersion string    `json:"pitr_version"`
	StartTime   time.Time `json:"start_time"`
	EndTime     time.Time `json:"end_time"`
	Encrypted   bool      `json:"encrypted"`
	KeyID       string    `json:"dedup_key_id"` // the dedup key its chunk IDs are under
	Files       int64     `json:"files"`        // regular files (hardlinks counted once)
	Dirs        int64     `json:"dirs"`
	Links       int64     `json:"symlinks"`
	Bytes       int64     `json:"bytes"`     // plaintext of all files
	NewBytes    int64     `json:"new_bytes"` // plaintext of chunks this snapshot stored
	Stored      int64     `json:"stored"`    // bytes this snapshot uploaded (packs, indexes, manifest)
	Changed     int64     `json:"changed"`   // files that changed while read, stored as last read and flagged
	Manifest    Part      `json:"manifest"`  // Name "manifest"; SHA256 of its plaintext
}

// ValidSetName says whether s can name a file set: lower-case letters,
// digits, _ and -, starting with a letter or digit, at most 64 bytes.
func ValidSetName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func checkSnapshot(set, id string) error {
	if !ValidSetName(set) {
		return fmt.Errorf("file set name %q: want lower-case letters, digits, _ and -", set)
	}
	if !ValidBackupID(id) {
		return fmt.Errorf("snapshot id %q: not an id", id)
	}
	return nil
}

// SnapshotSetPrefix is the listing prefix of one set's snapshots.
func SnapshotSetPrefix(set string) string { return SnapshotsPrefix + set + "/" }

// SnapshotPrefix is the listing prefix of one snapshot's objects.
func SnapshotPrefix(set, id string) string { return SnapshotSetPrefix(set) + id + "/" }

// SnapshotReservationKey returns the key reserving a snapshot's id.
func SnapshotReservationKey(set, id string) (string, error) {
	if err := checkSnapshot(set, id); err != nil {
		return "", err
	}
	return SnapshotPrefix(set, id) + ReservationName, nil
}

// ManifestKey returns the key of a snapshot's sealed manifest.
func ManifestKey(set, id string, encrypted bool) (string, error) {
	if err := checkSnapshot(set, id); err != nil {
		return "", err
	}
	return SnapshotPrefix(set, id) + "manifest." + Ext(encrypted), nil
}

// SnapshotEntryKey returns the key of a snapshot's entry.
func SnapshotEntryKey(set, id string) (string, error) {
	if err := checkSnapshot(set, id); err != nil {
		return "", err
	}
	return SnapshotPrefix(set, id) + SnapshotEntryName, nil
}

// ParseSnapshotEntryKey returns the set and id of a snapshot entry's key.
func ParseSnapshotEntryKey(key string) (set, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, SnapshotsPrefix)
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != SnapshotEntryName || checkSnapshot(parts[0], parts[1]) != nil {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// MarshalSnapshot returns a snapshot entry's content.
func MarshalSnapshot(s *Snapshot) []byte {
	b, _ := json.MarshalIndent(s, "", "  ")
	return append(b, '\n')
}

// UnmarshalSnapshot parses and checks a snapshot entry.
func UnmarshalSnapshot(data []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if s.Format != FormatVersion {
		return nil, fmt.Errorf("%w: snapshot format %d", ErrFormat, s.Format)
	}
	if err := checkSnapshot(s.Set, s.ID); err != nil {
		return nil, err
	}
	if s.Manifest.Key == "" || s.Manifest.SHA256 == "" {
		return nil, fmt.Errorf("snapshot %s of %s names no manifest", s.ID, s.Set)
	}
	return &s, nil
}

// Manifest format: a sealed stream of JSON lines. The first line is a
// ManifestHeader, then one ManifestEntry per path, sorted by Path (byte
// order), parents before their children.

// ManifestHeader is a manifest's first line.
type ManifestHeader struct {
	Format int      `json:"format"`
	Set    string   `json:"set"`
	ID     string   `json:"id"`
	Paths  []string `json:"paths"` // the set's paths, absolute, as configured
}

// Entry types of a manifest.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// ManifestEntry is one path of a snapshot. Path is absolute, slash-
// separated and clean ("/srv/app/uploads/a.png"); restore puts it under
// the target directory (TARGET/srv/app/uploads/a.png) after checking it.
type ManifestEntry struct {
	Path    string            `json:"path"`
	Type    string            `json:"type"`
	Mode    uint32            `json:"mode"` // permission bits plus setuid, setgid, sticky (0o7777)
	UID     uint32            `json:"uid"`
	GID     uint32            `json:"gid"`
	User    string            `json:"user,omitempty"`
	Group   string            `json:"group,omitempty"`
	MtimeNS int64             `json:"mtime_ns"`
	Size    int64             `json:"size,omitempty"`    // file: plaintext bytes
	Target  string            `json:"target,omitempty"`  // symlink: its target, as stored
	Link    string            `json:"link,omitempty"`    // file: restored as a hard link to this earlier Path
	Xattrs  map[string][]byte `json:"xattrs,omitempty"`  // name -> value
	Chunks  []ChunkRef        `json:"chunks,omitempty"`  // file: content, in order
	Changed bool              `json:"changed,omitempty"` // it never held still while read: content as last read
}

// ChunkRef is one chunk of a file's content.
type ChunkRef struct {
	ID     string `json:"id"`     // chunk ID (keyed hash), to find it in the index
	SHA256 string `json:"sha256"` // of its plaintext, checked on restore
	Size   int64  `json:"size"`   // plaintext bytes
}
