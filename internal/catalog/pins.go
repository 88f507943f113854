package catalog

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Pins (issue 11): pitr pin keeps one backup, dump or snapshot whatever
// the retention policy says; pitr unpin lets the policy decide again.
// Pins are append-only: each pin or unpin is a new create-only object,
// and the newest record of an item wins. Layout:
//
//	pins/backup/<id>/<at>.json            a backup's pin records
//	pins/dump/<db>/<id>/<at>.json         a dump's (db escaped as in dumps/)
//	pins/snapshot/<set>/<id>/<at>.json    a file snapshot's
//
// <at> is the record's time as an id (YYYYMMDDTHHMMSSZ, -1 to -9 for
// more records in the same second). pitr retain removes records that a
// newer one of the same item supersedes.

// PinsPrefix is the listing prefix of every pin record.
const PinsPrefix = "pins/"

// Kinds of pinned items; the same words as retention's item kinds.
const (
	PinBackup   = "backup"
	PinDump     = "dump"
	PinSnapshot = "snapshot"
)

// PinRef names one pinnable item.
type PinRef struct {
	Kind  string `json:"kind"`
	Group string `json:"group,omitempty"` // the dump's database, the snapshot's set; "" for a backup
	ID    string `json:"id"`
}

// String is how the CLI writes the item: ID, or group/ID.
func (p PinRef) String() string {
	if p.Group == "" {
		return p.ID
	}
	return p.Group + "/" + p.ID
}

// Pin is one pin record: plaintext, create-only.
type Pin struct {
	PinRef
	Pinned bool      `json:"pinned"`
	Note   string    `json:"note,omitempty"`
	At     time.Time `json:"at"`
	Host   string    `json:"host,omitempty"`
}

func pinItemPrefix(ref PinRef) (string, error) {
	if !ValidBackupID(ref.ID) {
		return "", fmt.Errorf("pin: %q is not an id", ref.ID)
	}
	switch ref.Kind {
	case PinBackup:
		if ref.Group != "" {
			return "", fmt.Errorf("pin: a backup has no group")
		}
		return PinsPrefix + PinBackup + "/" + ref.ID + "/", nil
	case PinDump:
		if err := checkDump(ref.Group, ref.ID); err != nil {
			return "", err
		}
		return PinsPrefix + PinDump + "/" + escapeDB(ref.Group) + "/" + ref.ID + "/", nil
	case PinSnapshot:
		if err := checkSnapshot(ref.Group, ref.ID); err != nil {
			return "", err
		}
		return PinsPrefix + PinSnapshot + "/" + ref.Group + "/" + ref.ID + "/", nil
	}
	return "", fmt.Errorf("pin: unknown kind %q", ref.Kind)
}

// PinKey returns the key of ref's record taken at id at (an id of the
// record's time, as BackupIDSeq makes).
func PinKey(ref PinRef, at string) (string, error) {
	prefix, err := pinItemPrefix(ref)
	if err != nil {
		return "", err
	}
	if !ValidBackupID(at) {
		return "", fmt.Errorf("pin record id %q: not an id", at)
	}
	return prefix + at + ".json", nil
}

// ParsePinKey returns the item and record id of a key PinKey built.
func ParsePinKey(key string) (ref PinRef, at string, ok bool) {
	rest, ok := strings.CutPrefix(key, PinsPrefix)
	if !ok {
		return ref, "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && parts[0] == PinBackup:
		ref = PinRef{Kind: PinBackup, ID: parts[1]}
	case len(parts) == 4 && parts[0] == PinDump:
		db, ok := unescapeDB(parts[1])
		if !ok {
			return ref, "", false
		}
		ref = PinRef{Kind: PinDump, Group: db, ID: parts[2]}
	case len(parts) == 4 && parts[0] == PinSnapshot:
		ref = PinRef{Kind: PinSnapshot, Group: parts[1], ID: parts[2]}
	default:
		return PinRef{}, "", false
	}
	at, ok = strings.CutSuffix(parts[len(parts)-1], ".json")
	if !ok {
		return PinRef{}, "", false
	}
	if want, err := PinKey(ref, at); err != nil || want != key {
		return PinRef{}, "", false
	}
	return ref, at, true
}

// IDLess orders ids of BackupIDSeq's form (backups, dumps, reports, pin
// records) oldest first: by their second, then their sequence number
// (key order puts "Z-1.json" before "Z.json").
func IDLess(a, b string) bool {
	ta, _ := BackupIDTime(a)
	tb, _ := BackupIDTime(b)
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return idSeq(a) < idSeq(b)
}

func idSeq(id string) int {
	_, seq, ok := strings.Cut(id, "-")
	if !ok || len(seq) != 1 {
		return 0
	}
	return int(seq[0] - '0')
}

// MarshalPin encodes a pin record.
func MarshalPin(p *Pin) []byte {
	b, _ := json.MarshalIndent(p, "", "  ")
	return append(b, '\n')
}

// UnmarshalPin decodes a pin record.
func UnmarshalPin(data []byte) (*Pin, error) {
	var p Pin
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	return &p, nil
}
