package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

// AppendJSON appends v as one JSON line to the results file at path; an
// empty path records nothing.
func AppendJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ResultsArg reads the results file that is a subcommand's one argument
// (the goals and summary subcommands bench/speed.sh runs).
func ResultsArg[T any](cmd string, args []string) ([]T, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("usage: %s RESULTS.jsonl", cmd)
	}
	return ReadResults[T](args[0])
}

// ReadResults reads a results file of JSON lines (AppendJSON's), skipping
// blank lines.
func ReadResults[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20) // a stream phase holds every probe
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r T
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// Median is the middle value of xs (the mean of the two middle ones for an
// even count), 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Splice returns the splice subcommand of the program driven by
// bench/SCRIPT: it puts a section into a Markdown file between that
// script's markers, or appends it after a blank line at the end the first
// time; the rest of the file is kept as it is.
//
//	splice --file F --section S
func Splice(script string) func(args []string) error {
	begin := "<!-- BEGIN bench/" + script + ": generated, edit the script instead -->"
	end := "<!-- END bench/" + script + " -->"
	return func(args []string) error {
		fs := flag.NewFlagSet("splice", flag.ExitOnError)
		file := fs.String("file", "", "Markdown file to update")
		section := fs.String("section", "", "file holding the new section")
		if err := fs.Parse(args); err != nil {
			return err
		}
		sec, err := os.ReadFile(*section)
		if err != nil {
			return err
		}
		old, err := os.ReadFile(*file)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		block := begin + "\n" + strings.TrimRight(string(sec), "\n") + "\n" + end
		var out bytes.Buffer
		b, e := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
		switch {
		case b >= 0 && e > b:
			out.Write(old[:b])
			out.WriteString(block)
			out.Write(old[e+len(end):])
		default:
			out.Write(old)
			if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n\n")) {
				if !bytes.HasSuffix(old, []byte("\n")) {
					out.WriteString("\n")
				}
				out.WriteString("\n")
			}
			out.WriteString(block + "\n")
		}
		tmp := *file + ".tmp"
		if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, *file)
	}
}

// Series is one tool's results in one phase of a bench, by round.
type Series[R any] struct {
	Title   string
	ByRound map[int]R
}

// Vals returns f of each round's result, in round order.
func (s *Series[R]) Vals(f func(R) float64) []float64 {
	rs := make([]int, 0, len(s.ByRound))
	for r := range s.ByRound {
		rs = append(rs, r)
	}
	sort.Ints(rs)
	out := make([]float64, 0, len(rs))
	for _, r := range rs {
		out = append(out, f(s.ByRound[r]))
	}
	return out
}

// Med is the median of Vals.
func (s *Series[R]) Med(f func(R) float64) float64 { return Median(s.Vals(f)) }

// Max is the largest of Vals (0 for none).
func (s *Series[R]) Max(f func(R) float64) float64 {
	var m float64
	for _, v := range s.Vals(f) {
		m = max(m, v)
	}
	return m
}

// Common is the flags every measuring command of a bench takes: which
// phase, tool and round a result belongs to, and where it goes.
type Common struct {
	Phase, Tool, Title, Out string
	Round, MinioPID         int
}

// Flags registers the flags; phases lists the phase names for the help.
func (c *Common) Flags(fs *flag.FlagSet, phases string) {
	fs.StringVar(&c.Phase, "phase", "", phases)
	fs.StringVar(&c.Tool, "tool", "", "short name of the tool")
	fs.StringVar(&c.Title, "title", "", "display name")
	fs.IntVar(&c.Round, "round", 0, "round number")
	fs.StringVar(&c.Out, "out", "", "results file to append a JSON line to")
	fs.IntVar(&c.MinioPID, "minio-pid", 0, "MinIO's pid, to report its CPU time")
}
