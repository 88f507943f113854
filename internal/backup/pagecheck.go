package backup

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pglogrepl"
)

// Data checksums, verified as BASE_BACKUP verifies them (sendFile in
// basebackup.c) when the cluster has data_checksums on: every page of a
// relation file in global/, base/ and the tablespaces, unless new or
// changed since the backup started (WAL replay rewrites those), is checked;
// a failing page is read once more (a write may have been under way), and
// if it still fails the backup fails at its end, as the server's does.

// blockSize is BLCKSZ; direct backups with data checksums need the default.
const blockSize = 8192

// noChecksumFiles are not pages (pg_checksums and basebackup.c skip them).
var noChecksumFiles = map[string]bool{"pg_control": true, "pg_filenode.map": true, "PG_VERSION": true}

// checksummed tells whether a file (tar name in the main data directory,
// or any file of a tablespace) holds checksummed pages, and its segment
// number.
func checksummed(name string, tablespace bool) (seg uint32, ok bool, err error) {
	if !tablespace && !strings.HasPrefix(name, "global/") && !strings.HasPrefix(name, "base/") {
		return 0, false, nil
	}
	file := name[strings.LastIndexByte(name, '/')+1:]
	if noChecksumFiles[file] || strings.HasPrefix(file, "pg_internal.init") {
		return 0, false, nil
	}
	if _, after, found := strings.Cut(file, "."); found {
		digits, _ := leadingDigits(after) // atoi, as the server does
		n, _ := strconv.ParseUint(digits, 10, 32)
		if n == 0 {
			return 0, false, fmt.Errorf("invalid segment number in file %q", name)
		}
		return uint32(n), true, nil
	}
	return 0, true, nil
}

// pageChecker verifies pages in the readers; it is safe for concurrent use.
type pageChecker struct {
	start     pglogrepl.LSN // pages with an LSN from here on are not checked
	segBlocks uint32        // RELSEG_SIZE: blocks per segment file
	warn      func(path string, blk uint32, got, want uint16)

	mu       sync.Mutex
	failures int
}

// check verifies the pages of buf, read from f at off (a multiple of
// blockSize), rereading a failing page once into buf.
func (p *pageChecker) check(f *os.File, buf []byte, off int64, seg uint32, path string) error {
	if len(buf)%blockSize != 0 {
		return nil // a partial page: the server stops checking the file too
	}
	for i := 0; i < len(buf); i += blockSize {
		page := buf[i : i+blockSize]
		blk := uint32((off+int64(i))/blockSize) + seg*p.segBlocks
		for retried := false; ; retried = true {
			got, want, ok := p.verify(page, blk)
			if ok {
				break
			}
			if retried {
				p.mu.Lock()
				p.failures++
				n := p.failures
				p.mu.Unlock()
				if n <= 5 && p.warn != nil {
					p.warn(path, blk-seg*p.segBlocks, got, want)
				}
				break
			}
			n, err := f.ReadAt(page, off+int64(i))
			if n < blockSize {
				clear(page[n:]) // truncated meanwhile: zeros, as the stored copy
				if err != nil && n == 0 {
					break
				}
			} else if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
		}
	}
	return nil
}

// verify checks one page: new pages and pages changed since the start pass.
func (p *pageChecker) verify(page []byte, blk uint32) (got, want uint16, ok bool) {
	if binary.LittleEndian.Uint16(page[14:]) == 0 { // PageIsNew: pd_upper == 0
		return 0, 0, true
	}
	lsn := pglogrepl.LSN(uint64(binary.NativeEndian.Uint32(page[0:]))<<32 | uint64(binary.NativeEndian.Uint32(page[4:])))
	if lsn >= p.start {
		return 0, 0, true
	}
	got, want = pageChecksum(page, blk), binary.NativeEndian.Uint16(page[8:])
	return got, want, got == want
}

// Failures is the number of pages that failed twice.
func (p *pageChecker) Failures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failures
}

// checksumBaseOffsets and pageChecksum are pg_checksum_page of
// src/include/storage/checksum_impl.h: 32 parallel FNV-1a-like sums over
// the page as uint32 words, with pd_checksum taken as zero.
var checksumBaseOffsets = [32]uint32{
	0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
	0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
	0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
	0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
}

func pageChecksum(page []byte, blk uint32) uint16 {
	sums := checksumBaseOffsets
	first := [4 * 32]byte(page[:4*32])
	first[8], first[9] = 0, 0 // pd_checksum
	checksumRow(&sums, &first)
	for i := 4 * 32; i+4*32 <= blockSize; i += 4 * 32 {
		checksumRow(&sums, (*[4 * 32]byte)(page[i:i+4*32]))
	}
	var zero [4 * 32]byte
	checksumRow(&sums, &zero)
	checksumRow(&sums, &zero)
	var r uint32
	for _, s := range sums {
		r ^= s
	}
	r ^= blk
	return uint16(r%65535 + 1) // modulo 2^16-1, as the server does
}

// checksumRow mixes one row of 32 words into the 32 sums (CHECKSUM_COMP).
func checksumRow(sums *[32]uint32, row *[4 * 32]byte) {
	const fnvPrime = 16777619
	for j := range 32 {
		t := sums[j] ^ binary.NativeEndian.Uint32(row[4*j:])
		sums[j] = t*fnvPrime ^ (t >> 17)
	}
}
