package restore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing the given range of f to
// disk without waiting for it (SYNC_FILE_RANGE_WRITE); only a later fsync
// makes it durable. See PostgreSQL's pg_flush_data, which does the same
// before its fsyncs.
func startWriteback(f *os.File, off, n int64) error {
	err := unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil // not supported here (some file systems, gVisor): the fsync does it all
	}
	return err
}
