package catalog

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// StreamChunk is a piece of a WAL segment that wal-receive stored while the
// segment was still filling: bytes [Start, End) of the segment, whose full
// size is SegSize. A complete segment, once stored under WALKey, supersedes
// its chunks.
//
//	wal/<TTTTTTTTXXXXXXXX>/<segment>.stream/<start>-<end>-<segsize>.<sha256>.<ext>
//
// with start, end and segsize as 8 upper-case hex digits.
type StreamChunk struct {
	Key        string
	Name       string // segment name
	Start, End int64
	SegSize    int64
	SHA256     string
	Encrypted  bool
	Size       int64     // stored bytes (filled from listings)
	Stored     time.Time // when the store received it (filled from listings)
}

const streamSuffix = ".stream/"

// StreamPrefix returns the listing prefix of segment name's chunks.
func StreamPrefix(name string) (string, error) {
	if !isSegmentName(name) {
		return "", fmt.Errorf("%q is not a WAL segment name", name)
	}
	dir, err := walDir(name)
	if err != nil {
		return "", err
	}
	return dir + name + streamSuffix, nil
}

// StreamChunkKey returns the key of a chunk of segment name.
func StreamChunkKey(name string, start, end, segSize int64, sha256Hex string, encrypted bool) (string, error) {
	prefix, err := StreamPrefix(name)
	if err != nil {
		return "", err
	}
	if start < 0 || end <= start || end > segSize || segSize > 0xFFFFFFFF {
		return "", fmt.Errorf("stream chunk of %s: bad range %d-%d of %d", name, start, end, segSize)
	}
	if !isHex(sha256Hex) || len(sha256Hex) != shaHexLen {
		return "", fmt.Errorf("stream chunk of %s: bad sha256 %q", name, sha256Hex)
	}
	return fmt.Sprintf("%s%08X-%08X-%08X.%s.%s", prefix, start, end, segSize, sha256Hex, Ext(encrypted)), nil
}

// ParseStreamChunkKey parses a key built by StreamChunkKey; ok is false for
// anything else.
func ParseStreamChunkKey(key string) (c StreamChunk, ok bool) {
	i := strings.Index(key, streamSuffix)
	if i < 0 || !strings.HasPrefix(key, walRoot) {
		return c, false
	}
	name := key[strings.LastIndexByte(key[:i], '/')+1 : i]
	base := key[i+len(streamSuffix):]
	switch {
	case strings.HasSuffix(base, "."+ExtEncrypted):
		c.Encrypted, base = true, strings.TrimSuffix(base, "."+ExtEncrypted)
	case strings.HasSuffix(base, "."+ExtPlain):
		base = strings.TrimSuffix(base, "."+ExtPlain)
	default:
		return c, false
	}
	rng, sum, found := strings.Cut(base, ".")
	if !found || len(sum) != shaHexLen || !isHex(sum) || len(rng) != 26 {
		return c, false
	}
	var vals [3]int64
	for j, part := range strings.Split(rng, "-") {
		if j > 2 || len(part) != 8 || !isUpperHex(part) {
			return c, false
		}
		vals[j], _ = strconv.ParseInt(part, 16, 64)
	}
	want, err := StreamChunkKey(name, vals[0], vals[1], vals[2], sum, c.Encrypted)
	if err != nil || want != key {
		return c, false
	}
	return StreamChunk{Key: key, Name: name, Start: vals[0], End: vals[1], SegSize: vals[2], SHA256: sum, Encrypted: c.Encrypted}, true
}

func isSegmentName(name string) bool { return len(name) == segPrefixLen && isUpperHex(name) }
