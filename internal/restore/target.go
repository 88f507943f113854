package restore

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pitr-dev/pitr/wal"
)

// TargetKind says where recovery stops.
type TargetKind int

// The kinds of recovery target, see
// https://www.postgresql.org/docs/current/runtime-config-wal.html#RUNTIME-CONFIG-WAL-RECOVERY-TARGET
const (
	Latest    TargetKind = iota // replay all archived WAL (the zero Target)
	Immediate                   // stop as soon as the backup is consistent
	Time                        // recovery_target_time
	LSN                         // recovery_target_lsn
	XID                         // recovery_target_xid
	Name                        // recovery_target_name, a pg_create_restore_point name
)

// Target is where recovery stops; the zero value is Latest. Only the
// field of its Kind is set.
type Target struct {
	Kind TargetKind
	Time time.Time // UTC, whole microseconds (PostgreSQL's precision)
	LSN  pglogrepl.LSN
	XID  uint64 // as pg_current_xact_id() shows it; PostgreSQL ignores the epoch
	Name string
}

// TargetUsage lists the forms ParseTarget accepts, for flag help texts. A
// time without a zone is UTC, not the local or the server's time zone: a
// restore should not depend on where it runs.
const TargetUsage = `latest, immediate, a time (RFC 3339 "2026-11-22T14:01:00Z" or "2026-11-22 14:01:00[.ffffff][+TZ]", UTC when the zone is absent), lsn:0/3000028, xid:1234 or name:RESTORE_POINT`

// maxRestorePointName is the longest name pg_create_restore_point accepts
// (MAXFNAMELEN - 1).
const maxRestorePointName = 63

// pgTime is PostgreSQL's ISO output, "2026-11-22 14:01:00.123456+05:30",
// also accepted with "-0800", "+05" or no zone.
var pgTime = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(\.\d{1,9})?(?:([+-])(\d{2})(?::?(\d{2}))?)?$`)

// ParseTarget parses a --to argument; TargetUsage lists the forms.
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	switch prefix, rest, _ := strings.Cut(s, ":"); {
	case s == "latest":
		return Target{Kind: Latest}, nil
	case s == "immediate":
		return Target{Kind: Immediate}, nil
	case prefix == "lsn":
		lsn, err := parseLSN(rest)
		if err != nil {
			return Target{}, fmt.Errorf("target %q: %v", s, err)
		}
		return Target{Kind: LSN, LSN: lsn}, nil
	case prefix == "xid":
		xid, err := strconv.ParseUint(rest, 10, 64)
		if err != nil || uint32(xid) < 3 { // 0-2 are not transactions
			return Target{}, fmt.Errorf("target %q: not a transaction id", s)
		}
		return Target{Kind: XID, XID: xid}, nil
	case prefix == "name":
		if err := checkRestorePointName(rest); err != nil {
			return Target{}, fmt.Errorf("target %q: %v", s, err)
		}
		return Target{Kind: Name, Name: rest}, nil
	}
	if t, err := parseTime(s); err == nil {
		return Target{Kind: Time, Time: t}, nil
	}
	return Target{}, fmt.Errorf("target %q not understood; use %s", s, TargetUsage)
}

// parseLSN is stricter than pglogrepl.ParseLSN, which ignores trailing
// text and overflowing halves.
func parseLSN(s string) (pglogrepl.LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil || strings.HasPrefix(hi, "+") || strings.HasPrefix(lo, "+") {
		return 0, fmt.Errorf("not an LSN (want e.g. 0/3000028)")
	}
	return pglogrepl.LSN(h<<32 | l), nil
}

func checkRestorePointName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty restore point name")
	case len(name) > maxRestorePointName:
		return fmt.Errorf("restore point name longer than %d bytes", maxRestorePointName)
	case strings.ContainsAny(name, "\x00\n\r"):
		return fmt.Errorf("restore point name contains a line break or NUL")
	}
	return nil
}

// parseTime accepts RFC 3339 and PostgreSQL's timestamptz output; see
// TargetUsage. The result is UTC, truncated to microseconds: commit times
// have that precision, so truncating keeps the same commits before T.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Truncate(time.Microsecond), nil
	}
	m := pgTime.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("not a time")
	}
	t, err := time.Parse("2006-01-02 15:04:05", m[1])
	if err != nil {
		return time.Time{}, err
	}
	if m[2] != "" {
		frac := (m[2][1:] + "00000000")[:9]
		ns, _ := strconv.Atoi(frac)
		t = t.Add(time.Duration(ns))
	}
	if m[3] != "" {
		h, _ := strconv.Atoi(m[4])
		mins, _ := strconv.Atoi(m[5]) // "" when absent: 0
		if h > 15 || mins > 59 {
			return time.Time{}, fmt.Errorf("bad zone offset")
		}
		off := time.Duration(h)*time.Hour + time.Duration(mins)*time.Minute
		if m[3] == "+" {
			off = -off
		}
		t = t.Add(off)
	}
	return t.UTC().Truncate(time.Microsecond), nil
}

// String returns the target in a form ParseTarget reads back.
func (t Target) String() string {
	switch t.Kind {
	case Immediate:
		return "immediate"
	case Time:
		return t.Time.UTC().Format(time.RFC3339Nano)
	case LSN:
		return "lsn:" + t.LSN.String()
	case XID:
		return "xid:" + strconv.FormatUint(t.XID, 10)
	case Name:
		return "name:" + t.Name
	}
	return "latest"
}

// pgTimeLayout is how Settings writes recovery_target_time: UTC with
// microseconds, as PostgreSQL prints a timestamptz.
const pgTimeLayout = "2006-01-02 15:04:05.000000-07"

// Settings returns the recovery target parameter for t; nil for Latest,
// which replays everything restore_command finds. It leaves out
// recovery_target_action: its default, pause, would keep the server waiting
// for pg_wal_replay_resume() at the target, so callers that want Start to
// return add recovery_target_action = 'promote'.
func (t Target) Settings() []Setting {
	switch t.Kind {
	case Immediate:
		return []Setting{{"recovery_target", "immediate"}}
	case Time:
		return []Setting{{"recovery_target_time", t.Time.UTC().Format(pgTimeLayout)}}
	case LSN:
		return []Setting{{"recovery_target_lsn", t.LSN.String()}}
	case XID:
		return []Setting{{"recovery_target_xid", strconv.FormatUint(t.XID, 10)}}
	case Name:
		return []Setting{{"recovery_target_name", t.Name}}
	}
	return nil
}

// TimelineKind says how TimelineChoice picks the timeline recovery follows.
type TimelineKind int

// The ways of choosing a timeline (--timeline).
const (
	TimelineLatest  TimelineKind = iota // the reachable timeline whose archived WAL ends last in time (the zero value)
	TimelineCurrent                     // the backup's own timeline
	TimelineNumber                      // the timeline in N
)

// TimelineChoice is a parsed --timeline. Whatever it says, recovery gets
// an explicit number: PostgreSQL's own 'latest' is the highest-numbered
// timeline, which may be a rehearsal's.
type TimelineChoice struct {
	Kind TimelineKind
	N    wal.Timeline
}

// TimelineUsage lists the forms ParseTimeline accepts.
const TimelineUsage = `latest (the timeline reachable from the backup whose archived WAL ends last), current (the backup's own) or a timeline number`

// ParseTimeline parses a --timeline argument; "" is latest.
func ParseTimeline(s string) (TimelineChoice, error) {
	switch s = strings.TrimSpace(s); s {
	case "", "latest":
		return TimelineChoice{Kind: TimelineLatest}, nil
	case "current":
		return TimelineChoice{Kind: TimelineCurrent}, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return TimelineChoice{}, fmt.Errorf("timeline %q not understood; use %s", s, TimelineUsage)
	}
	return TimelineChoice{Kind: TimelineNumber, N: wal.Timeline(n)}, nil
}

func (c TimelineChoice) String() string {
	switch c.Kind {
	case TimelineCurrent:
		return "current"
	case TimelineNumber:
		return strconv.FormatUint(uint64(c.N), 10)
	}
	return "latest"
}
