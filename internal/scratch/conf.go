package scratch

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/pitr-dev/pitr/internal/pgserver"
)

// sortedSettings validates m and returns it in name order, so the written
// configuration is deterministic.
func sortedSettings(m map[string]string) ([]pgserver.Setting, error) {
	var out []pgserver.Setting
	for name, value := range m {
		out = append(out, pgserver.Setting{Name: name, Value: value})
	}
	slices.SortFunc(out, func(a, b pgserver.Setting) int { return strings.Compare(a.Name, b.Name) })
	if err := pgserver.CheckSettings(out); err != nil {
		return nil, err
	}
	return out, nil
}

// withSettings returns base with user appended, a user setting replacing
// base's of the same name.
func withSettings(base, user []pgserver.Setting) []pgserver.Setting {
	var out []pgserver.Setting
	for _, b := range base {
		if !slices.ContainsFunc(user, func(u pgserver.Setting) bool { return strings.EqualFold(u.Name, b.Name) }) {
			out = append(out, b)
		}
	}
	return append(out, user...)
}

// writeConf adds settings to postgresql.conf, commenting out initdb's
// lines for the same parameters.
func writeConf(dataDir string, settings []pgserver.Setting) error {
	err := pgserver.EditFile(dataDir, pgserver.Conf, pgserver.Edit{
		Settings:       settings,
		DisabledPrefix: "# disabled by pitr scratch: ",
		Header:         "# added by pitr scratch",
	})
	if err != nil {
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	return nil
}

// hba trusts everyone on the socket and on 127.0.0.1, replication included.
const hba = `# written by pitr scratch: trust, local connections only
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    replication  all   127.0.0.1/32  trust
`

// writeHBA replaces pg_hba.conf, keeping its owner and mode.
func writeHBA(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	if _, err := f.WriteString(hba); err != nil {
		f.Close()
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}
