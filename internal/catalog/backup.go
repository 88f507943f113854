package catalog

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const backupsRoot = "backups/"

// BackupEntryName is the name of a backup's entry object, written last.
const BackupEntryName = "backup.json"

// Backup is a base backup's entry (backup.json): plaintext JSON, written
// after every part and the WAL it needs are stored. A backup without it is
// incomplete and never listed.
type Backup struct {
	ID             string       `json:"id"`
	Format         int          `json:"format"`
	Label          string       `json:"label,omitempty"`
	StartTime      time.Time    `json:"start_time"`
	EndTime        time.Time    `json:"end_time"`
	StartLSN       string       `json:"start_lsn"`
	EndLSN         string       `json:"end_lsn"`
	Timeline       uint32       `json:"timeline"`
	StartWAL       string       `json:"start_wal"` // segment holding StartLSN
	EndWAL         string       `json:"end_wal"`   // segment holding EndLSN
	WALSegmentSize int64        `json:"wal_segment_size"`
	PGVersion      int          `json:"pg_version"` // server_version_num, e.g. 150018
	SystemID       string       `json:"system_identifier"`
	PitrVersion    string       `json:"pitr_version"`
	Host           string       `json:"host"`
	Encrypted      bool         `json:"encrypted"`
	Bytes          int64        `json:"bytes"`  // plaintext, all parts
	Stored         int64        `json:"stored"` // after compression and encryption
	Tablespaces    []Tablespace `json:"tablespaces,omitempty"`
	Parts          []Part       `json:"parts"`
}

// Tablespace is a user tablespace at backup time.
type Tablespace struct {
	OID      uint32 `json:"oid"`
	Location string `json:"location"`
}

// Part is one stored stream of a backup.
type Part struct {
	Name string `json:"name"` // base.tar, <oid>.tar, backup_manifest
	Key  string `json:"key"`
	// A part records either the SHA-256 of its plaintext (written by an
	// older pitr) or the CRC32C of its plaintext and the SHA-256 of its
	// stored bytes, which cost a backup and a restore a third of the
	// hashing (envelope.SealLarge).
	SHA256       string `json:"sha256,omitempty"`
	CRC32C       string `json:"crc32c,omitempty"`
	StoredSHA256 string `json:"stored_sha256,omitempty"`
	Bytes        int64  `json:"bytes"`
	Stored       int64  `json:"stored"`
}

// sumsValid says whether p records one of the two sets of sums, well formed.
func (p Part) sumsValid() bool {
	if p.SHA256 != "" {
		return len(p.SHA256) == shaHexLen && isHex(p.SHA256) && p.CRC32C == "" && p.StoredSHA256 == ""
	}
	return len(p.CRC32C) == 8 && isHex(p.CRC32C) && len(p.StoredSHA256) == shaHexLen && isHex(p.StoredSHA256)
}

// idLayout is the time part of backup and dump ids.
const idLayout = "20060102T150405Z"

// MaxIDSeq is the highest sequence number BackupIDSeq takes: one digit, so
// that ids still sort as their times do.
const MaxIDSeq = 9

// BackupID returns the id of a backup started at t, the first one of its
// second.
func BackupID(t time.Time) string { return BackupIDSeq(t, 0) }

// BackupIDSeq returns the id of the seq-th backup started in t's second
// after the first (seq 0): "20261201T103000Z", then "20261201T103000Z-1"
// up to "-9". Key order is time order: "Z" < "Z-1" < "Z-9" < the next
// second. Dumps use the same ids, per database.
func BackupIDSeq(t time.Time, seq int) string {
	id := t.UTC().Format(idLayout)
	if seq > 0 {
		id += "-" + strconv.Itoa(seq)
	}
	return id
}

// ValidBackupID reports whether id has BackupIDSeq's form.
func ValidBackupID(id string) bool {
	_, ok := BackupIDTime(id)
	return ok
}

// BackupIDTime returns the second an id was taken in.
func BackupIDTime(id string) (time.Time, bool) {
	base, seq, hasSeq := strings.Cut(id, "-")
	if hasSeq && (len(seq) != 1 || seq[0] < '1' || seq[0] > '0'+MaxIDSeq) {
		return time.Time{}, false
	}
	t, err := time.Parse(idLayout, base)
	if err != nil || len(base) != len(idLayout) {
		return time.Time{}, false
	}
	return t, true
}

// ReservationName is the name of the object that reserves a backup's or a
// dump's id, created (create-only) before anything else is stored under it.
const ReservationName = "reserved.json"

// BackupReservationKey returns the key that reserves a backup id.
func BackupReservationKey(id string) (string, error) {
	if !ValidBackupID(id) {
		return "", fmt.Errorf("bad backup id %q", id)
	}
	return BackupPrefix(id) + ReservationName, nil
}

// BackupsPrefix is the listing prefix of all backups.
const BackupsPrefix = backupsRoot

// BackupPrefix is the listing prefix of one backup's objects.
func BackupPrefix(id string) string { return backupsRoot + id + "/" }

// BackupPartKey returns the key of a part, e.g. base.tar.
func BackupPartKey(id, part string, encrypted bool) (string, error) {
	if !ValidBackupID(id) {
		return "", fmt.Errorf("bad backup id %q", id)
	}
	if part == "" || strings.ContainsAny(part, "/\\") || part == BackupEntryName || part == ReservationName || strings.HasPrefix(part, ".") {
		return "", fmt.Errorf("bad backup part name %q", part)
	}
	return BackupPrefix(id) + part + "." + Ext(encrypted), nil
}

// BackupEntryKey returns the key of a backup's entry.
func BackupEntryKey(id string) string { return BackupPrefix(id) + BackupEntryName }

// ParseBackupEntryKey returns the backup id of an entry key.
func ParseBackupEntryKey(key string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(key, backupsRoot)
	if !ok {
		return "", false
	}
	id, name, ok := strings.Cut(rest, "/")
	if !ok || name != BackupEntryName || !ValidBackupID(id) {
		return "", false
	}
	return id, true
}

// BackupIDOfKey returns the backup id any key under backups/ belongs to.
func BackupIDOfKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, backupsRoot)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "/")
	return id, ok && ValidBackupID(id)
}

// MarshalBackup encodes an entry.
func MarshalBackup(b *Backup) []byte {
	out, _ := json.MarshalIndent(b, "", "  ")
	return append(out, '\n')
}

// UnmarshalBackup decodes and sanity-checks an entry. Its errors describe
// what is wrong with the entry without naming it: the caller knows which
// backup it read.
func UnmarshalBackup(data []byte) (*Backup, error) {
	var b Backup
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if b.Format != FormatVersion {
		return nil, fmt.Errorf("format %d not supported (this pitr reads format %d)", b.Format, FormatVersion)
	}
	if !ValidBackupID(b.ID) || len(b.Parts) == 0 || b.StartWAL == "" || b.EndWAL == "" {
		return nil, fmt.Errorf("incomplete entry (no id, parts or WAL range)")
	}
	for _, p := range b.Parts {
		if want, err := BackupPartKey(b.ID, p.Name, b.Encrypted); err != nil || want != p.Key || !p.sumsValid() {
			return nil, fmt.Errorf("bad part %q", p.Name)
		}
	}
	return &b, nil
}
