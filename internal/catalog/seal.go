package catalog

import (
	"encoding/json"
	"fmt"
	"strings"
)

// A seal (issue 13) stands for a whole segment wal-receive stored as
// chunks: once the chunks cover the segment, a small plaintext object
// names them and the whole segment's SHA-256, instead of a second upload
// of the whole segment.
//
//	wal/<TTTTTTTTXXXXXXXX>/<segment>.<sha256>.seal
//
// <sha256> is of the whole segment's plaintext, as in a WALKey, so the
// duplicate checks of wal-push and the WAL index see the segment as stored
// from the key alone. The chunks it lists stay until retention removes the
// segment; a reader checks each chunk's SHA-256 (in its key) and the whole
// segment's. pitr before issue 13 ignores seals and reads the chunks.
type Seal struct {
	Format  int    `json:"format"`
	Segment string `json:"segment"`
	SegSize int64  `json:"segsize"`
	SHA256  string `json:"sha256"` // of the whole segment's plaintext
	// Chunks cover the segment from byte 0 to SegSize without a hole, in
	// order: each starts at or before the previous one's end and ends
	// after it (chunks of a receiver that restarted may overlap; WAL
	// bytes never change once flushed).
	Chunks []SealChunk `json:"chunks"`
}

// SealChunk is one chunk a seal names.
type SealChunk struct {
	Key   string `json:"key"`
	Start int64  `json:"start"` // as in the key
	End   int64  `json:"end"`
}

const sealExt = ".seal"

// SealKey returns the key of segment name's seal.
func SealKey(name, sha256Hex string) (string, error) {
	if !isSegmentName(name) {
		return "", fmt.Errorf("%q is not a WAL segment name", name)
	}
	dir, err := walDir(name)
	if err != nil {
		return "", err
	}
	if !isHex(sha256Hex) || len(sha256Hex) != shaHexLen {
		return "", fmt.Errorf("seal of %s: bad sha256 %q", name, sha256Hex)
	}
	return dir + name + "." + sha256Hex + sealExt, nil
}

// ParseSealKey parses a key built by SealKey into the segment it stands
// for (Seal set, Encrypted false: a seal is plaintext); ok is false for
// anything else.
func ParseSealKey(key string) (o WALObject, ok bool) {
	base, found := strings.CutSuffix(key[strings.LastIndexByte(key, '/')+1:], sealExt)
	if !found || !strings.HasPrefix(key, walRoot) {
		return o, false
	}
	name, sum, found := strings.Cut(base, ".")
	if !found {
		return o, false
	}
	if want, err := SealKey(name, sum); err != nil || want != key {
		return o, false
	}
	return WALObject{Key: key, Name: name, SHA256: sum, Seal: true}, true
}

// MarshalSeal returns a seal's content.
func MarshalSeal(s *Seal) []byte {
	b, _ := json.MarshalIndent(s, "", " ")
	return append(b, '\n')
}

// UnmarshalSeal parses and checks the content of the seal stored under
// key: it must stand for the segment and SHA-256 its key names, and its
// chunks must be that segment's and cover it from byte 0 to its end, in
// order, without a hole.
func UnmarshalSeal(key string, data []byte) (*Seal, error) {
	o, ok := ParseSealKey(key)
	if !ok {
		return nil, fmt.Errorf("%q is not a seal key", key)
	}
	var s Seal
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("seal of %s: not valid JSON: %v", o.Name, err)
	}
	if s.Format != FormatVersion {
		return nil, fmt.Errorf("%w: seal of %s: format %d", ErrFormat, o.Name, s.Format)
	}
	if s.Segment != o.Name || s.SHA256 != o.SHA256 {
		return nil, fmt.Errorf("seal of %s: names segment %q sha256 %.16s, its key %.16s", o.Name, s.Segment, s.SHA256, o.SHA256)
	}
	var end int64
	for i, sc := range s.Chunks {
		c, ok := ParseStreamChunkKey(sc.Key)
		if !ok || c.Name != o.Name || c.SegSize != s.SegSize || c.Start > end || c.End <= end || sc.Start != c.Start || sc.End != c.End {
			return nil, fmt.Errorf("seal of %s: chunk %d (%q) does not follow byte %d of the segment", o.Name, i, sc.Key, end)
		}
		end = c.End
	}
	if end != s.SegSize || end == 0 {
		return nil, fmt.Errorf("seal of %s: chunks cover %d of %d bytes", o.Name, end, s.SegSize)
	}
	return &s, nil
}
