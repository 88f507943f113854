// Command pitr keeps PostgreSQL recoverable: it archives WAL and base
// backups to S3-compatible storage or a local directory, encrypted with age
// and compressed with zstd, and restores a cluster to any moment.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
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

func (e exitCodeError) Error() string {
	if e.err == nil { // the command printed its result (pitr check)
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e exitCodeError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args with the given streams, prints an
// error as one line on stderr and returns the exit status; main only adds
// signals and os.Exit, so tests drive the whole command in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommandEnv(&env{stdout: stdout, stderr: stderr, stdin: stdin})
	root.SetArgs(args)
	ran, err := root.ExecuteContextC(ctx)
	if err != nil && ran != nil && ran.Name() == "wal-fetch" {
		err = fetchExit(err)
	}
	if err != nil && ran != nil && ran.Name() == "check" {
		err = checkExit(stdout, err)
	}
	return printError(stderr, ran, err)
}

// printError prints err to w as one line, a usage error with a pointer to
// the help of the command that ran, and picks the exit status.
func printError(w io.Writer, ran *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	if ec := (exitCodeError{}); errors.As(err, &ec) && ec.err == nil {
		return ec.code // the output said it all
	}
	msg := oneLine(err.Error())
	if errors.Is(err, errUsage) && !strings.HasSuffix(msg, "config --doc')") { // a config file error names its own help
		path := "pitr"
		if ran != nil {
			path = ran.CommandPath()
		}
		msg += fmt.Sprintf(" (see '%s --help')", path)
	}
	fmt.Fprintf(w, "pitr: %s\n", msg)
	return exitCode(err)
}

// exitCode picks the status for err.
func exitCode(err error) int {
	var ec exitCodeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ec):
		return ec.code
	case errors.Is(err, errUsage):
		return exitUsage
	}
	return exitError
}

// oneLine joins multi-line text (a server log tail, a tool's stderr) into
// one line: line breaks, with the indentation after them, become " | ",
// other tabs a space.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n\t") {
		return s
	}
	var b strings.Builder
	for line := range strings.Lines(strings.TrimRight(s, "\r\n")) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(strings.ReplaceAll(line, "\t", " "))
	}
	return b.String()
}
