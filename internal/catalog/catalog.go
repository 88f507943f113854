// Package catalog owns the repository's object key layout; it is the only
// code that builds or parses keys. Layout, format 1 (docs/FORMAT.md):
//
//	pitr.json                                          repository marker, written once
//	clusters/<seq>-<system identifier>.json            the cluster the repository belongs to
//	wal/<TTTTTTTTXXXXXXXX>/<walname>.<sha256>.<ext>    segments, .partial and .backup files
//	wal/timelines/<TTTTTTTT>.history.<sha256>.<ext>    timeline history files
//	wal/<TTTTTTTTXXXXXXXX>/<segment>.<sha256>.seal     a segment held by stream chunks (seal.go)
//	backups/<id>/reserved.json                         reserves the id (create-only), written first
//	backups/<id>/<part>.<ext>                          base backup parts (tar streams, manifest)
//	backups/<id>/backup.json                           the backup's entry, plaintext, written last
//	dumps/<db>/<id>/reserved.json                      reserves the id (create-only), written first
//	dumps/<db>/<id>/dump.<ext>                         a pg_dump -Fc archive of one database
//	dumps/<db>/<id>/dump.json                          the dump's entry, plaintext, written last
//	dumps/_globals/<id>/dump.<ext>                     pg_dumpall --globals-only SQL (roles, tablespaces)
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
	"sort"
	"strconv"
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

// ErrNoRepository is wrapped when the store holds no repository marker:
// nothing was ever written there, or the URL names the wrong place. Readers
// report it; they never take it for an empty repository.
var ErrNoRepository = errors.New("no repository")

// The repository belongs to one PostgreSQL cluster, named by its system
// identifier (pg_controldata's "Database system identifier"). Each binding
// is an object of its own, written once, so the marker stays as it was
// created and the history of bindings stays readable:
//
//	clusters/00000001-7301234567890123456.json   the first cluster
//	clusters/00000002-7409876543210987654.json   its successor (pitr cluster-upgrade)
//
// The binding with the highest sequence number is the current one. A
// repository without bindings (made before they existed, or by a writer
// that does not know the identifier) is bound by the first writer that
// knows it.
const ClustersPrefix = "clusters/"

// Binding is the content of a clusters/ object.
type Binding struct {
	Seq       int       `json:"seq"`
	SystemID  string    `json:"system_identifier"`    // decimal uint64
	PGVersion int       `json:"pg_version,omitempty"` // server_version_num; 0 when the writer did not know it
	Bound     time.Time `json:"bound"`
	By        string    `json:"by"` // the command that wrote it: wal-push, backup, wal-receive, cluster-upgrade
	Tool      string    `json:"tool"`
}

// BindingObject is a clusters/ object as a listing shows it.
type BindingObject struct {
	Key      string
	Seq      int
	SystemID string
	ModTime  time.Time
}

// BindingKey returns the key of the binding with sequence number seq.
func BindingKey(seq int, systemID string) (string, error) {
	if seq < 1 || seq > 99999999 {
		return "", fmt.Errorf("cluster binding: bad sequence number %d", seq)
	}
	if v, err := strconv.ParseUint(systemID, 10, 64); err != nil || strconv.FormatUint(v, 10) != systemID {
		return "", fmt.Errorf("cluster binding: bad system identifier %q", systemID)
	}
	return fmt.Sprintf("%s%08d-%s.json", ClustersPrefix, seq, systemID), nil
}

// ParseBindingKey parses a key built by BindingKey.
func ParseBindingKey(key string) (BindingObject, bool) {
	rest, ok := strings.CutPrefix(key, ClustersPrefix)
	if !ok {
		return BindingObject{}, false
	}
	rest, ok = strings.CutSuffix(rest, ".json")
	seqS, sysid, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 || len(seqS) != 8 {
		return BindingObject{}, false
	}
	seq, err := strconv.Atoi(seqS)
	if err != nil {
		return BindingObject{}, false
	}
	if k, err := BindingKey(seq, sysid); err != nil || k != key {
		return BindingObject{}, false
	}
	return BindingObject{Key: key, Seq: seq, SystemID: sysid}, true
}

// CurrentBinding picks the current binding: the highest sequence number.
// Two writers that bound an unbound repository at the same moment wrote the
// same sequence number; the one the store received first wins (then the
// lower key), and every writer that lists both comes to the same answer.
func CurrentBinding(objs []BindingObject) (BindingObject, bool) {
	if len(objs) == 0 {
		return BindingObject{}, false
	}
	s := append([]BindingObject(nil), objs...)
	sort.Slice(s, func(i, j int) bool {
		if s[i].Seq != s[j].Seq {
			return s[i].Seq > s[j].Seq
		}
		if !s[i].ModTime.Equal(s[j].ModTime) {
			return s[i].ModTime.Before(s[j].ModTime)
		}
		return s[i].Key < s[j].Key
	})
	return s[0], true
}

// MarshalBinding returns a binding object's content.
func MarshalBinding(b Binding) []byte {
	b.Bound = b.Bound.UTC()
	out, _ := json.MarshalIndent(b, "", "  ")
	return append(out, '\n')
}

// UnmarshalBinding parses a binding object's content.
func UnmarshalBinding(data []byte) (Binding, error) {
	var b Binding
	if err := json.Unmarshal(data, &b); err != nil {
		return Binding{}, fmt.Errorf("cluster binding: %w", err)
	}
	return b, nil
}

// ErrOtherCluster is wrapped (through *ClusterMismatchError) when a writer
// serves another cluster than the one the repository belongs to.
var ErrOtherCluster = errors.New("repository belongs to another cluster")

// ClusterMismatchError refuses a write for another cluster. It names both
// clusters and the way out after pg_upgrade or a new initdb.
type ClusterMismatchError struct {
	Bound    string // the repository's current cluster
	This     string // the cluster of the refused write
	Replaced bool   // This was the repository's cluster once, before Bound
}

func (e *ClusterMismatchError) Error() string {
	msg := fmt.Sprintf("this repository belongs to cluster %s; is another cluster configured with it? (this server is cluster %s", e.Bound, e.This)
	if e.Replaced {
		return msg + ", which pitr cluster-upgrade replaced with cluster " + e.Bound + ")"
	}
	return msg + "; if it replaces cluster " + e.Bound + " after pg_upgrade or a new initdb, run pitr cluster-upgrade against it)"
}

// Is makes errors.Is(err, ErrOtherCluster) hold.
func (e *ClusterMismatchError) Is(target error) bool { return target == ErrOtherCluster }

// WALObject is one archived WAL-directory file as the catalog sees it.
type WALObject struct {
	Key       string
	Name      string // the file name in pg_wal, e.g. 000000010000000000000001
	SHA256    string // plaintext, lower-case hex
	Encrypted bool
	Size      int64 // stored bytes (filled from listings)
	// Seal: Key is the segment's seal (SealKey), and its bytes are in the
	// stream chunks the seal lists; Encrypted is then false.
	Seal bool
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
