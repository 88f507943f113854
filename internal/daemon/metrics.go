package daemon

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pitr-dev/pitr/wal/stream"
)

// metrics is the daemon's own registry (not the global default, so tests
// and embedding stay independent) and the state /healthz reads.
type metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	lastBackup         prometheus.Gauge
	lastBackupDuration prometheus.Gauge
	runs               *prometheus.CounterVec
	failures           *prometheus.CounterVec
	skipped            *prometheus.CounterVec
	running            *prometheus.GaugeVec
	lastDump           *prometheus.GaugeVec

	mu             sync.Mutex
	lastBackupTime time.Time // zero until a backup is known
	started        time.Time
}

func newMetrics(now func() time.Time, version string, status func() stream.Status, store func() StoreStatus) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), now: now, started: now()}
	m.lastBackup = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pitr_last_backup_success_timestamp_seconds",
		Help: "Unix time the newest complete base backup ended (0: none known)."})
	m.lastBackupDuration = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pitr_last_backup_duration_seconds",
		Help: "How long the newest complete base backup took."})
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pitr_job_runs_total",
		Help: "Scheduled job runs started, retries included."}, []string{"job"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pitr_job_failures_total",
		Help: "Scheduled job runs that failed."}, []string{"job"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pitr_job_skipped_total",
		Help: "Scheduled runs skipped because the previous run was still going."}, []string{"job"})
	m.running = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pitr_job_running",
		Help: "1 while a job runs."}, []string{"job"})
	m.lastDump = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pitr_last_dump_success_timestamp_seconds",
		Help: "Unix time the newest complete logical dump of a database ended."}, []string{"db"})
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "pitr_build_info", Help: "pitr's version.",
		ConstLabels: prometheus.Labels{"version": version}})
	info.Set(1)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.lastBackup, m.lastBackupDuration, m.runs, m.failures, m.skipped, m.running, m.lastDump, info)
	if status != nil {
		m.reg.MustRegister(&receiverCollector{status: status, now: now})
	}
	if store != nil {
		m.reg.MustRegister(&storeCollector{status: store, now: now})
	}
	return m
}

// hooks follow one job's runs.
func (m *metrics) hooks(name string) jobHooks {
	m.runs.WithLabelValues(name)
	m.failures.WithLabelValues(name)
	m.skipped.WithLabelValues(name)
	return jobHooks{
		started: func() { m.runs.WithLabelValues(name).Inc(); m.running.WithLabelValues(name).Set(1) },
		done: func(err error) {
			m.running.WithLabelValues(name).Set(0)
			if err != nil {
				m.failures.WithLabelValues(name).Inc()
			}
		},
		skipped: func() { m.skipped.WithLabelValues(name).Inc() },
	}
}

func (m *metrics) backupDone(end time.Time, took time.Duration) {
	m.mu.Lock()
	if end.After(m.lastBackupTime) {
		m.lastBackupTime = end
		m.lastBackup.Set(float64(end.UnixNano()) / 1e9)
		m.lastBackupDuration.Set(took.Seconds())
	}
	m.mu.Unlock()
}

func (m *metrics) dumpDone(db string, end time.Time) {
	m.lastDump.WithLabelValues(db).Set(float64(end.UnixNano()) / 1e9)
}

// health is what /healthz reports.
type health struct {
	status       func() stream.Status // nil: streaming is off
	backupMaxAge time.Duration        // 0: backups are not scheduled
	store        func() StoreStatus   // nil: not monitored
	// storeMaxOutage is how long store requests may keep failing, and
	// streamed WAL wait to be stored, before the daemon is unhealthy; 0:
	// not checked.
	storeMaxOutage time.Duration
}

// check returns "" when healthy, else the reason.
func (m *metrics) check(h health) string {
	now := m.now()
	var walAge time.Duration // of the oldest WAL the server flushed that is not stored yet
	walPending := false
	if h.status != nil {
		walAge, walPending = storedAge(h.status(), now)
	}
	if h.store != nil && h.storeMaxOutage > 0 {
		if st := h.store(); !st.Up() && now.Sub(st.FailingSince) > h.storeMaxOutage {
			reason := fmt.Sprintf("storage failing for %s (%d requests in a row, last: %s)",
				now.Sub(st.FailingSince).Round(time.Second), st.Failures, st.LastErrorKind)
			if st.LastSuccess.IsZero() {
				reason += "; no request succeeded since the daemon started"
			} else {
				reason += fmt.Sprintf("; last success %s ago", now.Sub(st.LastSuccess).Round(time.Second))
			}
			if walPending {
				reason += fmt.Sprintf("; streamed wal waiting %s to be stored", walAge.Round(time.Second))
			}
			return reason
		}
	}
	if h.status != nil && !h.status().Connected {
		return "wal receiver is not connected"
	}
	if walPending && h.storeMaxOutage > 0 && walAge > h.storeMaxOutage {
		return fmt.Sprintf("streamed wal waiting %s to be stored, more than %s", walAge.Round(time.Second), h.storeMaxOutage)
	}
	if h.backupMaxAge > 0 {
		m.mu.Lock()
		last, what := m.lastBackupTime, "last backup ended"
		if last.IsZero() {
			last, what = m.started, "no backup yet; daemon started"
		}
		m.mu.Unlock()
		if age := now.Sub(last); age > h.backupMaxAge {
			return fmt.Sprintf("%s %s ago, more than %s", what, age.Round(time.Second), h.backupMaxAge)
		}
	}
	return ""
}

// storedAge is how long WAL the server flushed has waited to be stored:
// since the stored position last advanced, or fell behind the server's if
// that came later (a quiet server writes no WAL, nothing is old until it
// writes again). ok is false when there is nothing waiting.
func storedAge(s stream.Status, now time.Time) (age time.Duration, ok bool) {
	if s.StoredLSN >= s.ServerLSN {
		return 0, false
	}
	from := s.StoredAt
	if s.BehindSince.After(from) {
		from = s.BehindSince
	}
	if from.IsZero() {
		return 0, false
	}
	return now.Sub(from), true
}

func (m *metrics) handler(h health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if reason := m.check(h); reason != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, reason)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// receiverCollector reads the receiver's status at each scrape.
type receiverCollector struct {
	status func() stream.Status
	now    func() time.Time
}

var (
	descConnected = prometheus.NewDesc("pitr_stream_connected", "1 while the WAL receiver is connected to the server.", nil, nil)
	descTimeline  = prometheus.NewDesc("pitr_stream_timeline", "Timeline being streamed.", nil, nil)
	descStored    = prometheus.NewDesc("pitr_stream_stored_lsn", "WAL position up to which everything is stored in the repository, as a number.", nil, nil)
	descAge       = prometheus.NewDesc("pitr_stream_stored_age_seconds", "Seconds since the stored position last advanced while WAL the server flushed waited to be stored; 0 when caught up.", nil, nil)
	descLag       = prometheus.NewDesc("pitr_stream_lag_bytes", "Bytes the server has flushed that are not yet stored.", nil, nil)
	descUploaded  = prometheus.NewDesc("pitr_stream_uploaded_bytes_total", "Bytes the receiver sent to the repository (compressed and encrypted).", nil, nil)
	descWAL       = prometheus.NewDesc("pitr_stream_wal_bytes_total", "WAL bytes received from the server.", nil, nil)
	descSegments  = prometheus.NewDesc("pitr_stream_segments_total", "Complete WAL segments stored by the receiver.", nil, nil)
	descErrors    = prometheus.NewDesc("pitr_stream_errors_total", "Failed connections or stores, each followed by a reconnect.", nil, nil)
)

func (c *receiverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descTimeline, descStored, descAge, descLag, descUploaded, descWAL, descSegments, descErrors} {
		ch <- d
	}
}

func (c *receiverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descConnected, connected)
	gauge(descTimeline, float64(s.Timeline))
	gauge(descStored, float64(s.StoredLSN))
	if age, ok := storedAge(s, c.now()); ok || !s.StoredAt.IsZero() {
		gauge(descAge, age.Seconds())
	}
	lag := 0.0
	if s.ServerLSN > s.StoredLSN {
		lag = float64(s.ServerLSN - s.StoredLSN)
	}
	gauge(descLag, lag)
	counter(descUploaded, s.UploadedBytes)
	counter(descWAL, s.WALBytes)
	counter(descSegments, s.Segments)
	counter(descErrors, s.Errors)
}

// storeCollector reads the store monitor's state at each scrape.
type storeCollector struct {
	status func() StoreStatus
	now    func() time.Time
}

var (
	descStoreUp       = prometheus.NewDesc("pitr_store_up", "1 unless the newest storage request failed (the store did not answer, or refused).", nil, nil)
	descStoreSuccess  = prometheus.NewDesc("pitr_store_last_success_timestamp_seconds", "Unix time of the newest storage request that succeeded (0: none yet).", nil, nil)
	descStoreFailures = prometheus.NewDesc("pitr_store_consecutive_failures", "Storage requests that failed since the last one that succeeded.", nil, nil)
	descStoreFailing  = prometheus.NewDesc("pitr_store_failing_seconds", "Seconds since the first of the current run of failed storage requests; 0 while the store is up.", nil, nil)
	descStoreErrors   = prometheus.NewDesc("pitr_store_errors_total", "Failed storage requests, by kind of error (no URLs or credentials).", []string{"kind"}, nil)
	descStoreLastErr  = prometheus.NewDesc("pitr_store_last_error_info", "1, labelled with the kind of the newest storage error.", []string{"kind"}, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStoreUp, descStoreSuccess, descStoreFailures, descStoreFailing, descStoreErrors, descStoreLastErr} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	up, failing := 1.0, 0.0
	if !s.Up() {
		up, failing = 0, c.now().Sub(s.FailingSince).Seconds()
	}
	gauge(descStoreUp, up)
	last := 0.0
	if !s.LastSuccess.IsZero() {
		last = float64(s.LastSuccess.UnixNano()) / 1e9
	}
	gauge(descStoreSuccess, last)
	gauge(descStoreFailures, float64(s.Failures))
	gauge(descStoreFailing, failing)
	for kind, n := range s.ErrorKinds {
		ch <- prometheus.MustNewConstMetric(descStoreErrors, prometheus.CounterValue, float64(n), kind)
	}
	if s.LastErrorKind != "" {
		gauge(descStoreLastErr, 1, s.LastErrorKind)
	}
}
