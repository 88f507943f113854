package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/pg"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/retry"
)

// Options configures a Receiver.
type Options struct {
	DSN          string // libpq connection string; a replication connection is made from it
	Slot         string // physical replication slot, created if missing
	Store        storage.Storage
	Codec        *envelope.Codec
	ShipInterval time.Duration // how often the unfinished segment's new bytes are stored; default 1s
	// Synchronous stores and reports every flush at once, for a server
	// that lists the receiver in synchronous_standby_names.
	Synchronous bool
	// GroupDelay, with Synchronous, is how long flushes may wait for more
	// before they are stored as one chunk (only when no chunk is being
	// stored: flushes arriving meanwhile wait for it anyway); 0 stores
	// each at once.
	GroupDelay time.Duration
	// AppName is the application_name the receiver connects with (what
	// synchronous_standby_names must name); default "pitr".
	AppName string
	// MaxBackoff caps the wait between reconnection attempts; default 30s.
	MaxBackoff time.Duration
	Version    string // pitr's version, for a new repository's marker
}

// Status is a snapshot of a Receiver's progress, for metrics and logs.
type Status struct {
	Connected     bool
	Timeline      uint32
	StoredLSN     pglogrepl.LSN // every byte before it is durably in the repository
	StoredAt      time.Time     // when StoredLSN last advanced
	ServerLSN     pglogrepl.LSN // the server's flush position as last reported
	UploadedBytes int64         // bytes sent to the store (after compression and encryption)
	WALBytes      int64         // WAL bytes received
	Segments      int64         // complete segments stored
	Errors        int64         // failed connections or stores, each followed by a reconnect
	// BehindSince is when StoredLSN last fell behind ServerLSN (zero while
	// caught up): with StoredAt, how long flushed WAL has waited to be
	// stored, without counting the quiet time before a server's first new
	// write.
	BehindSince time.Time
}

// trackBehind keeps BehindSince after StoredLSN or ServerLSN changed.
func (st *Status) trackBehind(now time.Time) {
	switch {
	case st.StoredLSN >= st.ServerLSN:
		st.BehindSince = time.Time{}
	case st.BehindSince.IsZero():
		st.BehindSince = now
	}
}

// Receiver streams WAL from a server into the repository.
type Receiver struct {
	opts Options
	// upload is opts.Store retrying transient errors for up to MaxBackoff
	// a call, for the upload lanes; a store still failing then ends the
	// session, and Run reconnects.
	upload *repo.Repo
	repo   *repo.Repo // opts.Store, for the marker and the binding

	mu     sync.Mutex
	status Status
	marked bool   // the repository marker was checked (Run's goroutine only)
	bound  string // the system identifier the repository was verified to belong to (same)

	deleteRefused atomic.Bool // the store refused to delete a chunk; logged once
}

// New returns a Receiver; Run starts it.
func New(opts Options) *Receiver {
	if opts.ShipInterval <= 0 {
		opts.ShipInterval = time.Second
	}
	if opts.AppName == "" {
		opts.AppName = "pitr"
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	policy := retry.Policy{Timeout: opts.MaxBackoff, Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	rp := repo.New(opts.Store, opts.Codec)
	return &Receiver{opts: opts, repo: rp, upload: rp.WithStore(retry.New(opts.Store, policy))}
}

// Status returns the current progress.
func (r *Receiver) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *Receiver) update(fn func(*Status)) {
	r.mu.Lock()
	fn(&r.status)
	r.mu.Unlock()
}

// errFatal marks errors reconnecting cannot fix.
type errFatal struct{ error }

func (e errFatal) Unwrap() error { return e.error }

// Run streams until ctx is cancelled, reconnecting with backoff after
// errors; it returns nil when ctx ends and an error only for problems
// reconnecting cannot fix (a logical slot of that name, different WAL in
// the repository under a segment's name).
func (r *Receiver) Run(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	wait := time.Second
	for {
		progressed, err := r.session(ctx)
		r.update(func(s *Status) { s.Connected = false })
		if ctx.Err() != nil {
			return nil
		}
		var fatal errFatal
		if errors.As(err, &fatal) {
			return fatal.error
		}
		r.update(func(s *Status) { s.Errors++ })
		if progressed {
			wait = time.Second
		}
		log.Warn().Err(err).Dur("retry_in", wait).Msg("wal streaming interrupted; reconnecting")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, r.opts.MaxBackoff)
	}
}

// statusInterval is how often feedback goes to the server when nothing
// else prompts it, as wal_receiver_status_interval's default.
const statusInterval = 10 * time.Second

// session is one connection's worth of streaming. progressed reports
// whether anything was stored, which resets the reconnect backoff.
func (r *Receiver) session(ctx context.Context) (progressed bool, err error) {
	log := zerolog.Ctx(ctx)
	if !r.marked {
		// Here, not once before the loop: a store down when the daemon
		// starts is retried like any other outage.
		if err := r.repo.Ensure(ctx, r.opts.Version); err != nil {
			if errors.Is(err, catalog.ErrFormat) {
				return false, errFatal{err}
			}
			return false, err
		}
		r.marked = true
	}
	conn, err := pg.ConnectAs(ctx, r.opts.DSN, true, r.opts.AppName)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	sys, err := pg.IdentifySystem(ctx, conn)
	if err != nil {
		return false, err
	}
	srv, err := pg.ServerInfo(ctx, conn)
	if err != nil {
		return false, err
	}
	if err := r.checkCluster(ctx, sys.SystemID, srv.Version); err != nil {
		return false, err
	}
	var sqlConn *pgconn.PgConn
	if srv.Major() < 15 {
		if sqlConn, err = pg.Connect(ctx, r.opts.DSN, false); err != nil {
			return false, err
		}
		defer sqlConn.Close(context.Background())
	}
	slot, created, err := pg.EnsurePhysicalSlot(ctx, conn, sqlConn, r.opts.Slot)
	if err != nil {
		return false, err
	}
	if !slot.Physical {
		return false, errFatal{fmt.Errorf("replication slot %s is not a physical slot", r.opts.Slot)}
	}
	start, tli := slot.RestartLSN, slot.RestartTLI
	if start == 0 {
		start = sys.XLogPos
	}
	if tli == 0 {
		tli = sys.Timeline
	}
	segSize := srv.WALSegmentSize
	start -= pglogrepl.LSN(uint64(start) % uint64(segSize))
	if created {
		log.Info().Str("slot", r.opts.Slot).Msg("replication slot created")
	}
	s := &session{
		r: r, conn: conn, log: log, segSize: segSize, tli: tli,
		stored: slot.RestartLSN, reported: slot.RestartLSN,
	}
	if s.stored == 0 {
		s.stored, s.reported = start, start
	}
	r.update(func(st *Status) {
		st.Connected, st.Timeline = true, tli
		if s.stored > st.StoredLSN {
			st.StoredLSN = s.stored
		}
		st.ServerLSN = sys.XLogPos
		st.trackBehind(time.Now())
	})
	log.Info().Str("slot", r.opts.Slot).Str("start", start.String()).Uint32("timeline", tli).
		Str("server_lsn", sys.XLogPos.String()).Bool("synchronous", r.opts.Synchronous).Msg("wal streaming started")
	err = s.run(ctx, start)
	return s.progressed, err
}

// checkCluster refuses to stream another cluster's WAL into the repository
// (binding an unbound one), once per server: a reconnect to the same
// cluster costs no request.
func (r *Receiver) checkCluster(ctx context.Context, systemID string, pgVersion int) error {
	if r.bound == systemID {
		return nil
	}
	c := repo.Cluster{SystemID: systemID, PGVersion: pgVersion, By: "wal-receive", Version: r.opts.Version}
	if err := r.repo.EnsureCluster(ctx, c); err != nil {
		if errors.Is(err, catalog.ErrOtherCluster) {
			return errFatal{fmt.Errorf("wal-receive: %w", err)}
		}
		return err
	}
	r.bound = systemID
	return nil
}

// DropSlot drops the receiver's replication slot, so the server stops
// keeping WAL for it. It waits while another receiver still uses it.
func DropSlot(ctx context.Context, dsn, slot string) error {
	conn, err := pg.Connect(ctx, dsn, true)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := pglogrepl.DropReplicationSlot(ctx, conn, slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
		return fmt.Errorf("drop replication slot %s: %w", slot, err)
	}
	return nil
}
