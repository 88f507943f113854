package catalog

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const dumpsRoot = "dumps/"

// DumpEntryName is the name of a dump's entry object, written last.
const DumpEntryName = "dump.json"

// dumpObjectName is the stored pg_dump archive, before its extension.
const dumpObjectName = "dump"

// Dump is a logical dump's entry (dump.json): plaintext JSON, written after
// the archive is stored. A dump without it is incomplete and never listed.
type Dump struct {
	ID          string    `json:"id"`
	Format      int       `json:"format"`
	Database    string    `json:"database"`
	Key         string    `json:"key"`          // the stored pg_dump -Fc archive
	PGVersion   int       `json:"pg_version"`   // server_version_num, e.g. 150018
	DumpVersion string    `json:"dump_version"` // pg_dump --version
	PitrVersion string    `json:"pitr_version"`
	Host        string    `json:"host"`
	StartTime   time.Time `json:"start_time"`
	EndTime     time.Time `json:"end_time"`
	Encrypted   bool      `json:"encrypted"`
	Bytes       int64     `json:"bytes"`  // plaintext archive
	Stored      int64     `json:"stored"` // after compression and encryption
	SHA256      string    `json:"sha256"` // plaintext archive
	// Kind is "" for a pg_dump -Fc archive of Database, or KindGlobals.
	Kind string `json:"kind,omitempty"`
}

// GlobalsDatabase is the database segment of the cluster-wide globals
// (pg_dumpall --globals-only: roles with their password hashes,
// tablespaces), stored at dumps/_globals/<id>/dump.<ext> with an entry
// whose Kind is KindGlobals, so listing, retention, pins, copy and verify
// treat them as one more dumped "database". pitr dump refuses a real
// database of that name.
const GlobalsDatabase = "_globals"

// KindGlobals marks a globals entry: its archive is plain SQL for psql.
const KindGlobals = "globals"

// DumpsPrefix is the listing prefix of all dumps.
const DumpsPrefix = dumpsRoot

// DumpDatabasePrefix is the listing prefix of one database's dumps.
func DumpDatabasePrefix(db string) string { return dumpsRoot + escapeDB(db) + "/" }

// DumpPrefix is the listing prefix of one dump's objects.
func DumpPrefix(db, id string) string { return DumpDatabasePrefix(db) + id + "/" }

// DumpObjectKey returns the key of a dump's archive.
func DumpObjectKey(db, id string, encrypted bool) (string, error) {
	if err := checkDump(db, id); err != nil {
		return "", err
	}
	return DumpPrefix(db, id) + dumpObjectName + "." + Ext(encrypted), nil
}

// DumpEntryKey returns the key of a dump's entry.
func DumpEntryKey(db, id string) (string, error) {
	if err := checkDump(db, id); err != nil {
		return "", err
	}
	return DumpPrefix(db, id) + DumpEntryName, nil
}

// ParseDumpEntryKey returns the database and id of an entry key.
func ParseDumpEntryKey(key string) (db, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, dumpsRoot)
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != DumpEntryName || !ValidBackupID(parts[1]) {
		return "", "", false
	}
	db, ok = unescapeDB(parts[0])
	if !ok || escapeDB(db) != parts[0] {
		return "", "", false
	}
	return db, parts[1], true
}

// DumpReservationKey returns the key that reserves a dump id of db.
func DumpReservationKey(db, id string) (string, error) {
	if err := checkDump(db, id); err != nil {
		return "", err
	}
	return DumpPrefix(db, id) + ReservationName, nil
}

func checkDump(db, id string) error {
	if db == "" || len(db) > 63 {
		return fmt.Errorf("bad database name %q", db)
	}
	if !ValidBackupID(id) {
		return fmt.Errorf("bad dump id %q", id)
	}
	return nil
}

// escapeDB makes a database name one safe key segment: letters, digits,
// '_', '-' and (not first) '.' stay; every other byte becomes %XX.
func escapeDB(db string) string {
	var b strings.Builder
	for i := 0; i < len(db); i++ {
		c := db[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unescapeDB(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isUpperHex(s[i+1:i+3]) {
			return "", false
		}
		c, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
		b.WriteByte(byte(c))
		i += 2
	}
	return b.String(), b.Len() > 0
}

// MarshalDump encodes an entry.
func MarshalDump(d *Dump) []byte {
	out, _ := json.MarshalIndent(d, "", "  ")
	return append(out, '\n')
}

// UnmarshalDump decodes and sanity-checks an entry. Its errors describe
// what is wrong with the entry without naming it: the caller knows which
// dump it read.
func UnmarshalDump(data []byte) (*Dump, error) {
	var d Dump
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if d.Format != FormatVersion {
		return nil, fmt.Errorf("format %d not supported (this pitr reads format %d)", d.Format, FormatVersion)
	}
	want, err := DumpObjectKey(d.Database, d.ID, d.Encrypted)
	if err != nil || want != d.Key || len(d.SHA256) != shaHexLen || !isHex(d.SHA256) {
		return nil, fmt.Errorf("incomplete entry (no id, database, archive key or checksum)")
	}
	if (d.Kind == KindGlobals) != (d.Database == GlobalsDatabase) || d.Kind != "" && d.Kind != KindGlobals {
		return nil, fmt.Errorf("kind %q does not match database %q", d.Kind, d.Database)
	}
	return &d, nil
}
