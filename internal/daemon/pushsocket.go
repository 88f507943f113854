package daemon

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// PushSocketStats is what the wal-push socket answered (issue 13: the
// daemon pushes WAL for wal-push, see wal/archive's Server).
type PushSocketStats struct {
	OK, Failed, Refused int64 // requests answered so
	LookAhead           int64 // files pushed ahead of their request
	FromMemory          int64 // requests answered by an earlier look-ahead
}

// PushSocketJob serves wal-push on a unix socket for as long as the daemon
// runs; stats feed the pitr_wal_push_socket_* metrics.
func PushSocketJob(run func(ctx context.Context) error, stats func() PushSocketStats) Job {
	return Job{Name: "wal-push socket", Run: func(ctx context.Context, _ bool) error { return run(ctx) }, pushStats: stats}
}

var (
	descSocketRequests = prometheus.NewDesc("pitr_wal_push_socket_requests_total",
		"wal-push calls the daemon answered over its socket, by result: ok (stored), failed (the call failed), refused (the call pushed in-process).", []string{"result"}, nil)
	descSocketAhead = prometheus.NewDesc("pitr_wal_push_socket_lookahead_total",
		"WAL files the daemon pushed ahead of their wal-push call.", nil, nil)
	descSocketMemory = prometheus.NewDesc("pitr_wal_push_socket_from_lookahead_total",
		"wal-push calls answered from an earlier look-ahead.", nil, nil)
)

type pushSocketCollector struct{ stats func() PushSocketStats }

func (c pushSocketCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSocketRequests
	ch <- descSocketAhead
	ch <- descSocketMemory
}

func (c pushSocketCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descSocketRequests, s.OK, "ok")
	counter(descSocketRequests, s.Failed, "failed")
	counter(descSocketRequests, s.Refused, "refused")
	counter(descSocketAhead, s.LookAhead)
	counter(descSocketMemory, s.FromMemory)
}
