package catalog

import (
	"encoding/json"
	"fmt"
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
	Name   string `json:"name"` // base.tar, <oid>.tar, backup_manifest
	Key    string `json:"key"`
	SHA256 string `json:"sha256"` // plaintext
	Bytes  int64  `json:"bytes"`
	Stored int64  `json:"stored"`
}

// BackupID returns the id of a backup started at t.
func BackupID(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// ValidBackupID reports whether id has BackupID's form.
func ValidBackupID(id string) bool {
	_, err := time.Parse("20060102T150405Z", id)
	return err == nil && len(id) == 16
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
	if part == "" || strings.ContainsAny(part, "/\\") || part == BackupEntryName || strings.HasPrefix(part, ".") {
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
		if want, err := BackupPartKey(b.ID, p.Name, b.Encrypted); err != nil || want != p.Key || len(p.SHA256) != shaHexLen {
			return nil, fmt.Errorf("bad part %q", p.Name)
		}
	}
	return &b, nil
}
