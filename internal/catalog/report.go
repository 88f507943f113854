package catalog

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Reports (issue 11): what pitr verify and restore drills found, so that
// pitr check and pitr status can tell, without the identity, when the
// repository was last proven good. Layout:
//
//	reports/<kind>/<id>.json   one run's report, plaintext JSON, create-only
//
// <kind> is "verify" or "drill"; <id> is the run's start time,
// YYYYMMDDTHHMMSSZ (UTC), with -1 to -9 for further runs in the same second,
// as for backups. A report is written once, at the end of the run; a run
// that died before the end left none. Reports are not data: no restore reads
// them, and pitr retain keeps the newest of each kind.

// ReportsPrefix is the listing prefix of every report.
const ReportsPrefix = "reports/"

// Kinds of report.
const (
	ReportVerify = "verify"
	ReportDrill  = "drill"
)

// Report is one verify or drill run's result.
type Report struct {
	Kind     string    `json:"kind"`
	ID       string    `json:"id"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Host     string    `json:"host,omitempty"`
	Tool     string    `json:"tool,omitempty"`
	OK       bool      `json:"ok"`
	// Problems are one line each, naming the object, backup or check.
	Problems []string `json:"problems,omitempty"`
	// Summary is the run's one-line result, as the command printed it.
	Summary string `json:"summary,omitempty"`

	// Verify: what the run read, whether it decrypted (it had the identity)
	// and whether it re-checked everything (--full) or only new objects.
	Objects   int64 `json:"objects,omitempty"`
	Bytes     int64 `json:"bytes,omitempty"`
	Decrypted bool  `json:"decrypted,omitempty"`
	Full      bool  `json:"full,omitempty"`

	// Drill: the backup restored, the target asked for, the point
	// recovery reached and the measured time to restore, from the start of
	// the restore until the server accepted connections.
	Backup     string     `json:"backup,omitempty"`
	Target     string     `json:"target,omitempty"`
	Reached    *time.Time `json:"reached,omitempty"`
	RTOSeconds float64    `json:"rto_seconds,omitempty"`
}

func checkReportKind(kind string) error {
	if kind != ReportVerify && kind != ReportDrill {
		return fmt.Errorf("report kind %q: want %q or %q", kind, ReportVerify, ReportDrill)
	}
	return nil
}

// ReportKindPrefix is the listing prefix of one kind's reports.
func ReportKindPrefix(kind string) string { return ReportsPrefix + kind + "/" }

// ReportKey returns the key of a report.
func ReportKey(kind, id string) (string, error) {
	if err := checkReportKind(kind); err != nil {
		return "", err
	}
	if !ValidBackupID(id) {
		return "", fmt.Errorf("report id %q: want YYYYMMDDTHHMMSSZ", id)
	}
	return ReportKindPrefix(kind) + id + ".json", nil
}

// ParseReportKey returns the kind and id of a report's key.
func ParseReportKey(key string) (kind, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, ReportsPrefix)
	if !ok {
		return "", "", false
	}
	kind, name, ok := strings.Cut(rest, "/")
	if !ok || checkReportKind(kind) != nil {
		return "", "", false
	}
	id, ok = strings.CutSuffix(name, ".json")
	if !ok || !ValidBackupID(id) {
		return "", "", false
	}
	return kind, id, true
}

// MarshalReport returns a report's content.
func MarshalReport(r *Report) []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return append(b, '\n')
}

// ParseReport parses a report's content.
func ParseReport(b []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if err := checkReportKind(r.Kind); err != nil {
		return nil, err
	}
	return &r, nil
}
