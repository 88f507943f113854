package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// Spool temp files. wal-push seals each file into
// <spool>/tmp/<name>.<pid>-<start>.<random> (about a segment's size) and
// removes it when done. A call killed with -9 cannot, so every call first
// removes the temp files of processes that are gone: pid and start time
// (clock ticks since boot, from /proc) name the process that made a file,
// and a pid that was reused has another start time. Where /proc cannot
// tell, a process that exists counts as alive: a leftover then stays, but a
// live process's file is never touched.
//
// A Put that started a multipart upload records it next to its temp file
// (<temp>.upload: key and upload id), before any part is sent. The record
// is removed once Put succeeds; otherwise the next call aborts that upload
// by its id (storage.Uploads) and then removes the record. Nothing else is
// aborted, so an upload of the same key by a live process (another
// wal-push, wal-receive) is never touched. A process killed between
// starting the upload and writing the record leaves an upload only a bucket
// lifecycle rule removes.
const uploadRecordSuffix = ".upload"

// legacyStaleAfter is when a temp file named without its owner (made by a
// pitr before these names) counts as left behind.
const legacyStaleAfter = time.Hour

// self names this process in temp file names.
var self = processTag(os.Getpid())

func processTag(pid int) string {
	start, err := processStart(pid)
	if err != nil {
		start = "0"
	}
	return strconv.Itoa(pid) + "-" + start
}

// processStart reads a process's start time, field 22 of /proc/PID/stat
// (after the command name, which may hold spaces and parentheses).
func processStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", errors.New("unexpected /proc stat format")
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return "", errors.New("unexpected /proc stat format")
	}
	return fields[19], nil // fields[0] is field 3, state
}

// alive reports whether the process that made a temp file tagged tag may
// still be running.
func alive(tag string) bool {
	if tag == self {
		return true
	}
	pidStr, start, _ := strings.Cut(tag, "-")
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return true
	}
	if cur, err := processStart(pid); err == nil {
		return cur == start
	}
	// No /proc (or not ours to read, e.g. hidepid): only a pid that does
	// not exist is known to be gone.
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// parseSpoolName splits a temp file name made by createSpoolTemp into the
// owner's tag and whether it is an upload record; ok is false for other
// names.
func parseSpoolName(base string) (tag string, record, ok bool) {
	rest, record := strings.CutSuffix(base, uploadRecordSuffix)
	i := strings.LastIndexByte(rest, '.') // before the random part
	if i < 0 {
		return "", false, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '.')
	if j < 0 {
		return "", false, false
	}
	tag = rest[j+1:]
	pid, start, found := strings.Cut(tag, "-")
	if !found || !allDigits(pid) || !allDigits(start) {
		return "", false, false
	}
	if _, err := wal.ParseName(rest[:j]); err != nil {
		return "", false, false
	}
	return tag, record, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// createSpoolTemp creates the temp file to seal name into.
func (p *pusher) createSpoolTemp(name wal.Name) (*os.File, error) {
	return os.CreateTemp(p.tmpDir(), name.String()+"."+self+".*")
}

type uploadRecord struct {
	Key      string `json:"key"`
	UploadID string `json:"upload_id"`
}

// recordUpload notes a multipart upload Put started for the temp file.
func (p *pusher) recordUpload(tmpPath string, u storage.Upload) {
	b, _ := json.Marshal(uploadRecord{Key: u.Key, UploadID: u.ID})
	if err := os.WriteFile(tmpPath+uploadRecordSuffix, b, 0o600); err != nil {
		p.log.Warn().Err(err).Str("key", u.Key).Msg("could not record multipart upload; a bucket lifecycle rule must remove it if this call dies")
	}
}

// cleanSpool removes what killed calls left in the spool's tmp directory:
// temp files of processes that are gone, and the multipart uploads they
// recorded. It reads one directory; it sends a request only per recorded
// upload, that is after a call died or a multipart Put failed. Failures are
// logged: a leftover must not stop archiving.
func (p *pusher) cleanSpool(ctx context.Context) {
	dir := p.tmpDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	removed := 0
	var records []string
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		tag, record, ok := parseSpoolName(e.Name())
		switch {
		case !ok:
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > legacyStaleAfter {
				if os.Remove(path) == nil {
					removed++
				}
			}
		case alive(tag):
		case record:
			records = append(records, path)
		default:
			if os.Remove(path) == nil {
				removed++
			}
		}
	}
	if removed > 0 {
		p.log.Info().Int("files", removed).Str("dir", dir).Msg("removed temp files of killed wal-push calls")
	}
	for _, path := range records {
		p.abortRecorded(ctx, path)
	}
}

// abortRecorded aborts the upload a dead call recorded, then removes the
// record; it keeps the record, for the next call, if the store would not.
func (p *pusher) abortRecorded(ctx context.Context, path string) {
	b, err := os.ReadFile(path)
	var rec uploadRecord
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Key == "" || rec.UploadID == "" {
		os.Remove(path) // torn by the kill: nothing to go on
		return
	}
	if up, ok := storage.UploadsOf(p.opts.Store); ok {
		if err := up.AbortUpload(ctx, rec.Key, rec.UploadID); err != nil {
			p.log.Warn().Err(err).Str("key", rec.Key).Msg("could not abort the multipart upload of a killed wal-push; the next call tries again")
			return
		}
		p.log.Info().Str("key", rec.Key).Str("upload_id", rec.UploadID).Msg("aborted the multipart upload of a killed wal-push")
	}
	os.Remove(path)
}
