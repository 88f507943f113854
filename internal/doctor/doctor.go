// Package doctor is pitr doctor: the setup check pgBackRest's check is
// for. Each check reads; the only thing it makes happen is a WAL switch
// (after a tiny write, a commit record) so that archive_command or
// wal-receive stores one more segment, which is the end-to-end proof that
// WAL reaches the repository. It writes nothing to the repository itself:
// the repository is append-only, and a test object could not be removed.
package doctor

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/pg"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
)

// Options configures Run.
type Options struct {
	Repo     *repo.Repo // opened, not created: doctor makes no marker
	OpenErr  error      // why the repository's store could not be opened, if so (Repo is nil then)
	RepoURL  string     // for messages
	LocalDir string     // the directory of a file:// repository, else ""
	// ClockURL is the S3 endpoint whose Date header the clock is compared
	// with; "" skips the clock check (a local repository).
	ClockURL string
	DSN      string // libpq-style, a superuser (pg_switch_wal)
	SpoolDir string // "" for the default (pg_wal/pitr, the server's own)

	Streaming bool   // daemon_stream: wal-receive ships WAL over stream_slot
	Slot      string // stream_slot

	Encrypted    bool
	Recipients   []age.Recipient
	IdentityFile string // age_identity_file, "" if unset

	ArchiveTimeout time.Duration // default 60s
	MaxSkew        time.Duration // default 5m
	Now            func() time.Time
	HTTPClient     *http.Client // default: a 10s timeout
}

// Result is one check's outcome.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"` // what to do, for a failure
}

// Status is a check's outcome.
type Status string

// The statuses; only StatusFail makes Run's caller exit non-zero.
const (
	StatusOK   Status = "ok"
	StatusFail Status = "FAIL"
	StatusSkip Status = "skip"
)

// Failed counts the failures among rs.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Status == StatusFail {
			n++
		}
	}
	return n
}

func ok(check, detail string) Result { return Result{Check: check, Status: StatusOK, Detail: detail} }
func skip(check, detail string) Result {
	return Result{Check: check, Status: StatusSkip, Detail: detail}
}
func fail(check, detail, fix string) Result {
	return Result{Check: check, Status: StatusFail, Detail: detail, Fix: fix}
}

// Check names, as printed.
const (
	CheckConnect  = "connect"
	CheckOpen     = "repository"
	CheckArchive  = "archive"
	CheckWritable = "repository writable"
	CheckSlot     = "replication slot"
	CheckKeepSize = "max_slot_wal_keep_size"
	CheckIdentity = "identity"
	CheckCluster  = "repository cluster"
	CheckClock    = "clock"
)

// Run runs every check, in order, and returns their results; report, if
// set, is called with each as soon as it is known.
func Run(ctx context.Context, opts Options, report func(Result)) []Result {
	if opts.ArchiveTimeout == 0 {
		opts.ArchiveTimeout = 60 * time.Second
	}
	if opts.MaxSkew == 0 {
		opts.MaxSkew = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	var out []Result
	add := func(r Result) {
		out = append(out, r)
		if report != nil {
			report(r)
		}
	}
	if opts.OpenErr != nil {
		add(fail(CheckOpen, opts.OpenErr.Error(), "check repo and its credentials (pitr config)"))
	}
	conn, err := pg.Connect(ctx, opts.DSN, false)
	if err != nil {
		add(fail(CheckConnect, err.Error(), "set pg_dsn (or PGHOST/PGPORT/PGUSER) to reach the server as a superuser"))
	} else {
		defer conn.Close(context.Background())
	}
	srv := server{}
	if conn != nil {
		srv, err = readServer(ctx, conn)
		if err != nil {
			add(fail(CheckConnect, err.Error(), "connect as a superuser (pg_dsn), on the primary"))
			conn = nil
		}
	}
	if conn != nil && opts.Repo != nil {
		add(checkArchive(ctx, opts, conn, srv))
	}
	archived := len(out) > 0 && out[len(out)-1].Check == CheckArchive && out[len(out)-1].Status == StatusOK
	add(checkWritable(opts, srv, conn != nil, archived))
	if conn != nil {
		add(checkSlot(ctx, opts, conn))
		add(checkKeepSize(opts, srv))
	}
	add(checkIdentity(opts, srv.owner))
	if conn != nil && opts.Repo != nil {
		add(checkCluster(ctx, opts, srv))
	}
	add(checkClock(ctx, opts))
	return out
}

// server is what the checks need to know about the server.
type server struct {
	systemID     string
	dataDir      string
	archiveMode  string
	keepSize     string // max_slot_wal_keep_size as SHOW prints it
	owner        owner
	ownerUnknown string // why owner is not known, if so
}

func readServer(ctx context.Context, conn *pgconn.PgConn) (server, error) {
	var s server
	var err error
	if s.systemID, _, err = query1(ctx, conn, `SELECT system_identifier::text FROM pg_control_system()`); err != nil {
		return s, err
	}
	if s.dataDir, _, err = query1(ctx, conn, `SHOW data_directory`); err != nil {
		return s, err
	}
	if s.archiveMode, _, err = query1(ctx, conn, `SHOW archive_mode`); err != nil {
		return s, err
	}
	if s.keepSize, _, err = query1(ctx, conn, `SHOW max_slot_wal_keep_size`); err != nil {
		return s, err
	}
	s.owner, err = serverOwner(s.dataDir)
	if err != nil {
		s.ownerUnknown = err.Error()
	}
	return s, nil
}

// query1 returns the first column of the first row; null says it was NULL.
func query1(ctx context.Context, conn *pgconn.PgConn, sql string, args ...string) (string, bool, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	r := conn.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if r.Err != nil {
		return "", false, fmt.Errorf("query %q: %w", sql, r.Err)
	}
	if len(r.Rows) == 0 || len(r.Rows[0]) == 0 {
		return "", true, nil
	}
	return string(r.Rows[0][0]), r.Rows[0][0] == nil, nil
}

// checkArchive writes a commit record, switches WAL and waits until the
// segment it closed is in the repository. A failure counted by
// pg_stat_archiver meanwhile ends the wait at once.
func checkArchive(ctx context.Context, opts Options, conn *pgconn.PgConn, srv server) Result {
	const fixCmd = "set archive_command = 'pitr wal-push %p' with the repository settings the server's user can read (/etc/pitr/pitr.yaml or its environment), then SELECT pg_reload_conf(); the server log names the error"
	if srv.archiveMode == "off" && !opts.Streaming {
		return fail(CheckArchive, "archive_mode is off and daemon_stream is off: no WAL reaches the repository",
			"set archive_mode = on and "+fixCmd[4:]+" (archive_mode needs a restart)")
	}
	failedBefore, _, err := query1(ctx, conn, `SELECT failed_count::text FROM pg_stat_archiver`)
	if err != nil {
		return fail(CheckArchive, err.Error(), "")
	}
	if _, _, err := query1(ctx, conn, `SELECT pg_current_xact_id()::text`); err != nil {
		return fail(CheckArchive, err.Error(), "connect as a superuser on the primary (pg_dsn)")
	}
	name, _, err := query1(ctx, conn, `SELECT pg_walfile_name(pg_switch_wal())`)
	if err != nil {
		return fail(CheckArchive, err.Error(), "connect as a superuser on the primary (pg_dsn), or GRANT EXECUTE ON FUNCTION pg_switch_wal() to its user")
	}
	prefix, err := catalog.WALPrefix(name)
	if err != nil {
		return fail(CheckArchive, err.Error(), "")
	}
	start := opts.Now()
	deadline := start.Add(opts.ArchiveTimeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		found, err := stored(ctx, opts.Repo.Store(), prefix, name)
		if err != nil {
			return fail(CheckArchive, fmt.Sprintf("look for %s in the repository: %v", name, err), "check the repository settings and credentials")
		}
		if found {
			return ok(CheckArchive, fmt.Sprintf("segment %s reached the repository in %s", name, opts.Now().Sub(start).Round(10*time.Millisecond)))
		}
		if srv.archiveMode != "off" {
			failed, _, err := query1(ctx, conn, `SELECT failed_count::text || ' ' || coalesce(last_failed_wal, '') FROM pg_stat_archiver`)
			if err == nil {
				n, wal, _ := strings.Cut(failed, " ")
				if n != failedBefore {
					return fail(CheckArchive, fmt.Sprintf("archive_command failed on %s (pg_stat_archiver failed_count %s)", wal, n), fixCmd)
				}
			}
		}
		if !opts.Now().Before(deadline) {
			via := "archive_command"
			if srv.archiveMode == "off" {
				via = "wal-receive (daemon_stream)"
			}
			return fail(CheckArchive, fmt.Sprintf("segment %s not in the repository after %s (via %s)", name, opts.ArchiveTimeout, via),
				"check that "+via+" runs and stores into "+opts.RepoURL+"; the server log and pitr's log name the error")
		}
		select {
		case <-ctx.Done():
			return fail(CheckArchive, ctx.Err().Error(), "")
		case <-tick.C:
		}
	}
}

func stored(ctx context.Context, st storage.Storage, prefix, name string) (bool, error) {
	found := false
	err := st.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if o, ok := catalog.ParseWALKey(oi.Key); ok && o.Name == name {
			found = true
		} else if o, ok := catalog.ParseSealKey(oi.Key); ok && o.Name == name {
			found = true // sealed by wal-receive: wal-push stored nothing
		}
		return nil
	})
	return found, err
}

// checkSlot: when streaming, the slot exists, its WAL is not lost, and an
// inactive slot has not fallen behind max_slot_wal_keep_size.
func checkSlot(ctx context.Context, opts Options, conn *pgconn.PgConn) Result {
	if !opts.Streaming {
		return skip(CheckSlot, "daemon_stream is off")
	}
	row, null, err := query1(ctx, conn, `SELECT slot_type || ' ' || active::text || ' ' || coalesce(wal_status, '-') || ' ' ||
		coalesce(safe_wal_size::text, '-') || ' ' || coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text, '-')
		FROM pg_replication_slots WHERE slot_name = $1`, opts.Slot)
	if err != nil {
		return fail(CheckSlot, err.Error(), "")
	}
	if null || row == "" {
		return fail(CheckSlot, fmt.Sprintf("slot %s does not exist", opts.Slot), "start pitr daemon (or pitr wal-receive): it creates the slot")
	}
	f := strings.Fields(row)
	if len(f) != 5 {
		return fail(CheckSlot, "unexpected pg_replication_slots row "+row, "")
	}
	typ, active, status, safe, lag := f[0], f[1] == "true", f[2], f[3], f[4]
	lagText := lag + " bytes behind"
	if n, err := strconv.ParseInt(lag, 10, 64); err == nil {
		lagText = humanBytes(n) + " behind"
	}
	switch {
	case typ != "physical":
		return fail(CheckSlot, fmt.Sprintf("slot %s is a %s slot", opts.Slot, typ), "set stream_slot to a physical slot's name (pitr creates it)")
	case status == "lost":
		return fail(CheckSlot, fmt.Sprintf("slot %s lost WAL it needed (wal_status lost)", opts.Slot),
			"drop the slot (SELECT pg_drop_replication_slot('"+opts.Slot+"')), restart pitr daemon, and take a base backup: the WAL since is not in the repository")
	case status == "unreserved":
		return fail(CheckSlot, fmt.Sprintf("slot %s is about to lose WAL (wal_status unreserved, %s)", opts.Slot, lagText),
			"start pitr daemon (or wal-receive) now, or raise max_slot_wal_keep_size")
	case !active && safe != "-" && strings.HasPrefix(safe, "-"):
		return fail(CheckSlot, fmt.Sprintf("slot %s is inactive and %s, beyond max_slot_wal_keep_size", opts.Slot, lagText),
			"start pitr daemon (or wal-receive)")
	case !active:
		return ok(CheckSlot, fmt.Sprintf("slot %s exists, inactive, %s (wal_status %s): start pitr daemon to stream", opts.Slot, lagText, status))
	}
	return ok(CheckSlot, fmt.Sprintf("slot %s active, %s (wal_status %s)", opts.Slot, lagText, status))
}

func checkKeepSize(opts Options, srv server) Result {
	if !opts.Streaming {
		return skip(CheckKeepSize, "daemon_stream is off")
	}
	if srv.keepSize == "-1" {
		return fail(CheckKeepSize, "max_slot_wal_keep_size is -1: a stopped receiver keeps WAL in pg_wal until the disk is full",
			"set max_slot_wal_keep_size (e.g. '20GB', below pg_wal's free space) in postgresql.conf, then SELECT pg_reload_conf()")
	}
	return ok(CheckKeepSize, "max_slot_wal_keep_size = "+srv.keepSize)
}

// checkCluster: the marker is one this pitr reads and the repository is
// bound to this cluster's system identifier.
func checkCluster(ctx context.Context, opts Options, srv server) Result {
	if err := opts.Repo.Check(ctx, opts.RepoURL); err != nil {
		return fail(CheckCluster, err.Error(), "the first wal-push, backup or wal-receive creates it: fix the archive check first")
	}
	objs, err := opts.Repo.Bindings(ctx)
	if err != nil {
		return fail(CheckCluster, err.Error(), "")
	}
	cur, bound := catalog.CurrentBinding(objs)
	switch {
	case !bound:
		return fail(CheckCluster, "the repository is bound to no cluster yet", "the first wal-push binds it: fix the archive check first")
	case cur.SystemID != srv.systemID:
		return fail(CheckCluster, fmt.Sprintf("the repository belongs to cluster %s, this server is %s", cur.SystemID, srv.systemID),
			"point repo at this cluster's own repository; after pg_upgrade or a restore promoted elsewhere, run pitr cluster-upgrade")
	}
	return ok(CheckCluster, fmt.Sprintf("marker ok, bound to this cluster (%s)", srv.systemID))
}

// checkClock compares the store's Date header with our clock: S3 refuses
// requests signed more than 15 minutes off.
func checkClock(ctx context.Context, opts Options) Result {
	if opts.ClockURL == "" {
		return skip(CheckClock, "local repository")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, opts.ClockURL, nil)
	if err != nil {
		return fail(CheckClock, err.Error(), "check s3_endpoint")
	}
	sent := opts.Now()
	resp, err := opts.HTTPClient.Do(req)
	if err != nil {
		return fail(CheckClock, fmt.Sprintf("ask %s for the time: %v", opts.ClockURL, err), "check s3_endpoint and the network")
	}
	resp.Body.Close()
	got := opts.Now()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return fail(CheckClock, fmt.Sprintf("%s sent no usable Date header", opts.ClockURL), "")
	}
	local := sent.Add(got.Sub(sent) / 2)
	skew := local.Sub(date)
	if skew < 0 {
		skew = -skew
	}
	if skew > opts.MaxSkew {
		return fail(CheckClock, fmt.Sprintf("local clock is %s off the store's (%s)", skew.Round(time.Second), date.UTC().Format(time.RFC3339)),
			"synchronise the clock (systemd-timesyncd, chrony or ntpd): S3 refuses requests signed with a skewed clock")
	}
	return ok(CheckClock, fmt.Sprintf("%s off the store's clock (limit %s)", skew.Round(time.Second), opts.MaxSkew))
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
