// Command pitr keeps PostgreSQL recoverable: it archives WAL and base
// backups to S3-compatible storage or a local directory, encrypted with age
// and compressed with zstd, and restores a cluster to any moment.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes. wal-fetch is special because PostgreSQL reads its status:
// 1 means "not in the archive" (recovery ends there and the server
// promotes), and anything above 125 makes recovery stop with FATAL.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNotFound = 1
	exitFatal    = 126
)

// errUsage is wrapped by errors in the command line.
var errUsage = errors.New("usage")

// exitCodeError carries a specific exit status.
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ran, err := newRootCommand().ExecuteContextC(ctx)
	stop()
	if err != nil && ran != nil && ran.Name() == "wal-fetch" {
		err = fetchExit(err)
	}
	os.Exit(exitCode(err))
}

// exitCode prints err as one line and picks the status.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "pitr: %v\n", err)
	var ec exitCodeError
	switch {
	case errors.As(err, &ec):
		if errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "Run 'pitr --help' for usage.")
		}
		return ec.code
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "Run 'pitr --help' for usage.")
		return exitUsage
	}
	return exitError
}
