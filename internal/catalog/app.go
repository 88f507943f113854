package catalog

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Application points (issue 12). Layout:
//
//	apps/<app>/<id>/reserved.json   reserves the id (create-only), written first
//	apps/<app>/<id>/app.json        the app point's entry, plaintext, written last
//
// An app point names what was taken together for one application: the
// PostgreSQL restore point (its name, LSN, time and timeline), the file
// snapshots and the logical dumps, and the versions recorded at the time.
// It stores no data of its own: everything it names is an object of its
// own kind, kept by it (retention keeps what a kept app point names).
// <app> follows the file-set name rules (ValidSetName); <id> is the app
// point's start time, as for backups.

const appsRoot = "apps/"

// AppsPrefix is the listing prefix of every app point.
const AppsPrefix = appsRoot

// AppEntryName is the name of an app point's entry object, written last.
const AppEntryName = "app.json"

// AppFormat is the format of app.json this pitr writes.
const AppFormat = 1

// App is an app point's entry (app.json).
type App struct {
	ID          string    `json:"id"`
	Format      int       `json:"format"`
	App         string    `json:"app"`
	Host        string    `json:"host"`
	PitrVersion string    `json:"pitr_version"`
	StartTime   time.Time `json:"start_time"`
	EndTime     time.Time `json:"end_time"`

	// RestorePoint is the database's point, taken before the files, so
	// every file the restored database refers to is in the restored
	// files. Nil when the app has no physically backed-up cluster.
	RestorePoint *AppRestorePoint `json:"restore_point,omitempty"`
	// Snapshots are the file snapshots taken for the point, by set.
	Snapshots []AppSnapshot `json:"snapshots,omitempty"`
	// Dumps are the logical dumps taken for the point, by database.
	Dumps []AppDump `json:"dumps,omitempty"`
	// Versions are the outputs of the app's version commands, by name,
	// plus "postgresql" (server_version) and "postgresql_num"
	// (server_version_num) recorded automatically.
	Versions map[string]string `json:"versions,omitempty"`
	// Hooks are what ran, with their durations, for the record.
	Hooks []AppHook `json:"hooks,omitempty"`
}

// AppRestorePoint is the PostgreSQL restore point of an app point.
type AppRestorePoint struct {
	Name       string    `json:"name"` // pg_create_restore_point's name
	LSN        string    `json:"lsn"`  // as PostgreSQL prints it, 0/1A2B3C4D
	Time       time.Time `json:"time"` // the server's clock when it was created
	Timeline   uint32    `json:"timeline"`
	SystemID   string    `json:"system_identifier"`
	PGVersion  int       `json:"pg_version"`  // server_version_num
	WALSegment string    `json:"wal_segment"` // the segment holding LSN, which must be archived
}

// AppSnapshot names one file snapshot of an app point.
type AppSnapshot struct {
	Set   string `json:"set"`
	ID    string `json:"id"`
	Files int64  `json:"files"`
	Bytes int64  `json:"bytes"`
}

// AppDump names one logical dump of an app point.
type AppDump struct {
	Database string `json:"database"`
	ID       string `json:"id"`
	Bytes    int64  `json:"bytes"`
}

// AppHook records one hook run.
type AppHook struct {
	Name     string  `json:"name"`
	When     string  `json:"when"` // "before" or "after"
	Seconds  float64 `json:"seconds"`
	ExitCode int     `json:"exit_code"`
}

func checkApp(app, id string) error {
	if !ValidSetName(app) {
		return fmt.Errorf("app name %q: want lower-case letters, digits, _ and -", app)
	}
	if !ValidBackupID(id) {
		return fmt.Errorf("app point id %q: want YYYYMMDDTHHMMSSZ", id)
	}
	return nil
}

// AppPrefixOf is the listing prefix of one application's points.
func AppPrefixOf(app string) string { return appsRoot + app + "/" }

// AppPrefix is the listing prefix of one app point's objects.
func AppPrefix(app, id string) string { return AppPrefixOf(app) + id + "/" }

// AppReservationKey returns the key reserving an app point's id.
func AppReservationKey(app, id string) (string, error) {
	if err := checkApp(app, id); err != nil {
		return "", err
	}
	return AppPrefix(app, id) + ReservationName, nil
}

// AppEntryKey returns the key of an app point's entry.
func AppEntryKey(app, id string) (string, error) {
	if err := checkApp(app, id); err != nil {
		return "", err
	}
	return AppPrefix(app, id) + AppEntryName, nil
}

// ParseAppEntryKey returns the app and id of an app entry's key.
func ParseAppEntryKey(key string) (app, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, appsRoot)
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != AppEntryName || checkApp(parts[0], parts[1]) != nil {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// MarshalApp returns an app entry's content.
func MarshalApp(a *App) []byte {
	b, _ := json.MarshalIndent(a, "", "  ")
	return append(b, '\n')
}

// UnmarshalApp parses an app entry.
func UnmarshalApp(data []byte) (*App, error) {
	var a App
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("app entry: %w", err)
	}
	if a.Format != AppFormat {
		return nil, fmt.Errorf("app entry format %d: this pitr reads format %d", a.Format, AppFormat)
	}
	if err := checkApp(a.App, a.ID); err != nil {
		return nil, err
	}
	return &a, nil
}
