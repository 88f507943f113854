// Command stream is the measuring half of bench/stream.sh: it runs WAL
// receivers (pitr wal-receive and pg_receivewal) side by side under a
// pgbench load, probes how long a commit takes to be reported flushed by
// each, and measures their CPU and peak memory.
//
// It is its own main package, not a test, so `go test ./...` never runs it.
// Run bench/stream.sh rather than this directly.
//
// Subcommands:
//
//	freeport                     print a free TCP port on 127.0.0.1
//	mkbucket NAME...             create buckets (BENCH_S3_ENDPOINT, AWS_* credentials)
//	run [flags]                  one phase; appends a JSON line to --out
//	report [flags] RESULTS.jsonl Markdown section from the JSON lines
//	goals RESULTS.jsonl          issue 13's streaming goals, met or not (for bench/speed.sh)
//	summary RESULTS.jsonl        issue 13's table row for streaming (for bench/speed.sh)
//	splice --file F --section S  put the section into F between the markers
package main

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

func main() {
	harness.Main("stream",
		harness.Command{Name: "freeport", Run: harness.FreePort},
		harness.Command{Name: "mkbucket", Run: harness.MkBucket},
		harness.Command{Name: "run", Run: cmdRun},
		harness.Command{Name: "report", Run: cmdReport},
		harness.Command{Name: "goals", Run: cmdGoals},
		harness.Command{Name: "summary", Run: cmdSummary},
		harness.Command{Name: "splice", Run: harness.Splice("stream.sh")},
	)
}

// walObjects sums the whole-segment objects under s3://bucket/prefix/wal/
// and counts the streamed chunks left there.
func walObjects(where string, res *Recv) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := harness.S3Client(ctx)
	if err != nil {
		return err
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(where, "s3://"), "/")
	prefix = strings.TrimSuffix(prefix, "/") + "/wal/"
	return harness.ListPrefix(ctx, c, bucket, prefix, func(o types.Object) error {
		if strings.Contains(aws.ToString(o.Key), ".stream/") {
			res.LeftoverChunks++
		} else {
			res.WholeBytes += aws.ToInt64(o.Size)
			res.WholeObjects++
		}
		return nil
	})
}
