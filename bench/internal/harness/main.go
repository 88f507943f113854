// Package harness holds what the benchmark programs under bench/ share: the
// subcommand dispatch of their main functions, the S3 client for the MinIO
// their scripts start, CPU and memory measurement of child processes, and
// the JSON-lines results and Markdown splicing behind their reports.
//
// Each bench program is a main package driven by a script beside it
// (bench/backup.sh, bench/walpush.sh, bench/stream.sh); none is a test, so
// `go test ./...` never runs them.
package harness

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Command is one subcommand of a bench program.
type Command struct {
	Name string
	Run  func(args []string) error
}

// Main runs the subcommand named by os.Args[1] with the arguments after it.
// No subcommand exits 2 with a usage line listing cmds in order; an unknown
// one or a failure prints "PROG SUBCOMMAND: error" and exits 1.
func Main(prog string, cmds ...Command) {
	if len(os.Args) < 2 {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name
		}
		fmt.Fprintf(os.Stderr, "usage: %s %s ...\n", prog, strings.Join(names, "|"))
		os.Exit(2)
	}
	err := fmt.Errorf("unknown subcommand %q", os.Args[1])
	for _, c := range cmds {
		if c.Name == os.Args[1] {
			err = c.Run(os.Args[2:])
			break
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n", prog, os.Args[1], err)
		os.Exit(1)
	}
}

// FreePort is the freeport subcommand: it prints a free TCP port on 127.0.0.1.
func FreePort([]string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}
