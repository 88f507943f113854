// Package catalog owns the repository's object key layout; it is the only
// code that builds or parses keys. Layout, format 1 (docs/FORMAT.md):
//
//	pitr.json                                          repository marker, written once
//	wal/<TTTTTTTTXXXXXXXX>/<walname>.<sha256>.<ext>    segments, .partial and .backup files
//	wal/timelines/<TTTTTTTT>.history.<sha256>.<ext>    timeline history files
//	backups/<id>/<part>.<ext>                          base backup parts (tar streams, manifest)
//	backups/<id>/backup.json                           the backup's entry, plaintext, written last
//	dumps/<db>/<id>/dump.<ext>                         a pg_dump -Fc archive of one database
//	dumps/<db>/<id>/dump.json                          the dump's entry, plaintext, written last
//
// <ext> is "zst.age" (zstd then age) or "zst" (zstd only, when encryption is
// explicitly disabled). WAL keys carry the plaintext SHA-256, so the same
// content always maps to the same key and different content to a different
// key: nothing is ever rewritten in place, and duplicate checks and copies
// need no secret key.
package catalog

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FormatVersion is the repository format this pitr writes and reads.
const FormatVersion = 1

// MarkerKey is the repository marker's key.
const MarkerKey = "pitr.json"

// Extensions of stored objects.
const (
	ExtEncrypted = "zst.age"
	ExtPlain     = "zst"
)

// Ext returns the object extension for an encrypted or plain object.
func Ext(encrypted bool) string {
	if encrypted {
		return ExtEncrypted
	}
	return ExtPlain
}

// Marker is the content of pitr.json.
type Marker struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	Tool    string    `json:"tool"`
}

// MarshalMarker returns pitr.json's content.
func MarshalMarker(now time.Time, version string) []byte {
	b, _ := json.MarshalIndent(Marker{Format: FormatVersion, Created: now.UTC(), Tool: "pitr " + version}, "", "  ")
	return append(b, '\n')
}

// ErrFormat is wrapped when the repository marker is unreadable or names a
// format this pitr does not know: retrying cannot help.
var ErrFormat = errors.New("unsupported repository")

// CheckMarker parses pitr.json and refuses formats this pitr does not know.
func CheckMarker(b []byte) error {
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%w: marker %s: %v", ErrFormat, MarkerKey, err)
	}
	if m.Format != FormatVersion {
		return fmt.Errorf("%w: repository format %d is not supported by this pitr (it reads format %d)", ErrFormat, m.Format, FormatVersion)
	}
	return nil
}

// WALObject is one archived WAL-directory file as the catalog sees it.
type WALObject struct {
	Key       string
	Name      string // the file name in pg_wal, e.g. 000000010000000000000001
	SHA256    string // plaintext, lower-case hex
	Encrypted bool
	Size      int64 // stored bytes (filled from listings)
}

const (
	walRoot       = "wal/"
	timelinesDir  = "wal/timelines/"
	shaHexLen     = 64
	segPrefixLen  = 24 // TTTTTTTTXXXXXXXXYYYYYYYY
	walDirNameLen = 16 // TTTTTTTTXXXXXXXX: one directory per 4 GiB of WAL with 16 MiB segments
)

// WALPrefix returns the listing prefix that holds every stored version of
// the WAL file name (callers still compare names exactly: the prefix of
// 000000010000000000000001 also matches 000000010000000000000001.partial).
func WALPrefix(name string) (string, error) {
	dir, err := walDir(name)
	if err != nil {
		return "", err
	}
	return dir + name + ".", nil
}

// WALDirPrefix returns the listing prefix of the directory holding name, used
// to find many neighbouring segments with one listing.
func WALDirPrefix(name string) (string, error) { return walDir(name) }

// WALKey returns the key for a WAL file with the given plaintext SHA-256.
func WALKey(name, sha256Hex string, encrypted bool) (string, error) {
	dir, err := walDir(name)
	if err != nil {
		return "", err
	}
	if !isHex(sha256Hex) || len(sha256Hex) != shaHexLen {
		return "", fmt.Errorf("wal key for %s: bad sha256 %q", name, sha256Hex)
	}
	return dir + name + "." + sha256Hex + "." + Ext(encrypted), nil
}

// ParseWALKey parses a key built by WALKey; ok is false for anything else
// (temporary or foreign objects are ignored, never guessed at).
func ParseWALKey(key string) (o WALObject, ok bool) {
	if !strings.HasPrefix(key, walRoot) {
		return o, false
	}
	base := key[strings.LastIndexByte(key, '/')+1:]
	var encrypted bool
	switch {
	case strings.HasSuffix(base, "."+ExtEncrypted):
		encrypted, base = true, strings.TrimSuffix(base, "."+ExtEncrypted)
	case strings.HasSuffix(base, "."+ExtPlain):
		base = strings.TrimSuffix(base, "."+ExtPlain)
	default:
		return o, false
	}
	dot := strings.LastIndexByte(base, '.')
	if dot < 1 {
		return o, false
	}
	name, sum := base[:dot], base[dot+1:]
	if len(sum) != shaHexLen || !isHex(sum) {
		return o, false
	}
	if dir, err := walDir(name); err != nil || dir+base+"."+Ext(encrypted) != key {
		return o, false
	}
	return WALObject{Key: key, Name: name, SHA256: sum, Encrypted: encrypted}, true
}

// TimelinesPrefix is the listing prefix of all timeline history files.
const TimelinesPrefix = timelinesDir

func walDir(name string) (string, error) {
	if len(name) >= segPrefixLen && isUpperHex(name[:segPrefixLen]) && (len(name) == segPrefixLen || name[segPrefixLen] == '.') {
		return walRoot + name[:walDirNameLen] + "/", nil
	}
	if len(name) == 8+len(".history") && isUpperHex(name[:8]) && strings.HasSuffix(name, ".history") {
		return timelinesDir, nil
	}
	return "", fmt.Errorf("%q is not a WAL file name", name)
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func isUpperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
