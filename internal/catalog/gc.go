package catalog

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Condemned packs (issue 11): the first phase of reclaiming file packs.
// Layout:
//
//	files/condemned/<id>.json   one record: packs no kept snapshot needs,
//	                            plaintext JSON, create-only
//
// <id> is the record's time, YYYYMMDDTHHMMSSZ (UTC), with -1 to -9 for
// further records in the same second, as for backups. A record lists the
// packs it condemns, each with the time it was first condemned, and the
// records it supersedes. The packs condemned are those of the records no
// other record supersedes: a new record carries over the packs still
// condemned, drops those found referenced again (un-condemned) or
// deleted, and supersedes the old records, which are then deleted. A
// snapshot leaves the chunks of a condemned pack out of its dedup index
// and stores them afresh; a restore still reads them until the pack is
// gone. repo's gc.go has the protocol.

// CondemnedPrefix is the listing prefix of the condemned-pack records.
const CondemnedPrefix = filesRoot + "condemned/"

// CondemnedKey returns the key of the condemned-pack record id.
func CondemnedKey(id string) (string, error) {
	if !ValidBackupID(id) {
		return "", fmt.Errorf("condemned record id %q: want YYYYMMDDTHHMMSSZ", id)
	}
	return CondemnedPrefix + id + ".json", nil
}

// ParseCondemnedKey returns the id of a condemned-pack record's key.
func ParseCondemnedKey(key string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(key, CondemnedPrefix)
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(rest, ".json")
	if !ok || !ValidBackupID(id) {
		return "", false
	}
	return id, true
}

// Condemned is one condemned-pack record.
type Condemned struct {
	Format     int             `json:"format"`
	ID         string          `json:"id"`
	Time       time.Time       `json:"time"` // when it was written
	Host       string          `json:"host,omitempty"`
	Packs      []CondemnedPack `json:"packs"`
	Supersedes []string        `json:"supersedes,omitempty"` // ids of the records it replaces
}

// CondemnedPack is one pack a record condemns.
type CondemnedPack struct {
	Pack    string    `json:"pack"`    // the pack's SHA-256 (PackKey)
	Indexes []string  `json:"indexes"` // SHA-256s of its index objects (IndexKey)
	Size    int64     `json:"size"`    // the pack's stored bytes
	Since   time.Time `json:"since"`   // first condemned: the grace period runs from here
	Repack  bool      `json:"repacked,omitempty"`
}

// MarshalCondemned returns a record's content.
func MarshalCondemned(c *Condemned) []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}

// UnmarshalCondemned parses and checks a record.
func UnmarshalCondemned(data []byte) (*Condemned, error) {
	var c Condemned
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("condemned record: not valid JSON: %v", err)
	}
	if c.Format != FormatVersion {
		return nil, fmt.Errorf("%w: condemned record format %d", ErrFormat, c.Format)
	}
	if !ValidBackupID(c.ID) {
		return nil, fmt.Errorf("condemned record: id %q: want YYYYMMDDTHHMMSSZ", c.ID)
	}
	for _, p := range c.Packs {
		if _, err := PackKey(p.Pack); err != nil {
			return nil, fmt.Errorf("condemned record %s: %w", c.ID, err)
		}
		for _, ix := range p.Indexes {
			if _, err := IndexKey(ix); err != nil {
				return nil, fmt.Errorf("condemned record %s: %w", c.ID, err)
			}
		}
	}
	for _, id := range c.Supersedes {
		if !ValidBackupID(id) {
			return nil, fmt.Errorf("condemned record %s: supersedes %q: not a record id", c.ID, id)
		}
	}
	return &c, nil
}
