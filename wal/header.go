package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// The first page of every WAL segment starts with a long page header
// (XLogLongPageHeaderData in PostgreSQL's access/xlog_internal.h), written in
// the server's byte order:
//
//	offset  0  uint16 xlp_magic      0xD1xx, one value per WAL format (0xD110 in 15)
//	offset  2  uint16 xlp_info       XLP_LONG_HEADER (0x0002) on a segment's first page
//	offset  4  uint32 xlp_tli
//	offset  8  uint64 xlp_pageaddr
//	offset 16  uint32 xlp_rem_len    (then 4 bytes of padding)
//	offset 24  uint64 xlp_sysid      the cluster's system identifier
//	offset 32  uint32 xlp_seg_size
//	offset 36  uint32 xlp_xlog_blcksz
//
// .partial files are segments too; .history and .backup files carry no header.
const (
	longHeaderLen  = 40
	xlpLongHeader  = 0x0002
	xlpMagicHigh   = 0xD1
	offsetSysID    = 24
	offsetSegSize  = 32
	offsetBlockLen = 36
)

// errNoHeader is wrapped when a file has no WAL long page header.
var errNoHeader = errors.New("no WAL segment header")

// SegmentHeader is what a segment's long page header says about its cluster.
type SegmentHeader struct {
	Magic    uint16
	SystemID string // decimal, as IDENTIFY_SYSTEM and pg_controldata print it
	SegSize  int64
}

// ParseSegmentHeader parses the long page header at the start of a segment.
func ParseSegmentHeader(b []byte) (SegmentHeader, error) {
	if len(b) < longHeaderLen {
		return SegmentHeader{}, fmt.Errorf("%w: %d bytes", errNoHeader, len(b))
	}
	var order binary.ByteOrder = binary.LittleEndian
	if b[1] != xlpMagicHigh && b[0] == xlpMagicHigh {
		order = binary.BigEndian // a server on a big-endian machine
	}
	h := SegmentHeader{Magic: order.Uint16(b[0:])}
	if h.Magic>>8 != xlpMagicHigh {
		return SegmentHeader{}, fmt.Errorf("%w: magic %#04x", errNoHeader, h.Magic)
	}
	if order.Uint16(b[2:])&xlpLongHeader == 0 {
		return SegmentHeader{}, fmt.Errorf("%w: first page has a short header", errNoHeader)
	}
	sysid := order.Uint64(b[offsetSysID:])
	h.SegSize = int64(order.Uint32(b[offsetSegSize:]))
	blck := order.Uint32(b[offsetBlockLen:])
	if sysid == 0 || !ValidSegmentSize(h.SegSize) || blck == 0 || blck&(blck-1) != 0 {
		return SegmentHeader{}, fmt.Errorf("%w: implausible system identifier, segment or block size", errNoHeader)
	}
	h.SystemID = strconv.FormatUint(sysid, 10)
	return h, nil
}

// ReadSegmentHeader reads the long page header of the segment at path.
func ReadSegmentHeader(path string) (SegmentHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return SegmentHeader{}, err
	}
	defer f.Close()
	b := make([]byte, longHeaderLen)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return SegmentHeader{}, err
	}
	h, err := ParseSegmentHeader(b[:n])
	if err != nil {
		return SegmentHeader{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}
