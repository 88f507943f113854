package scratch

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

type setting struct{ name, value string }

// settingName is what a GUC name looks like, including custom "ext.name".
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// sortedSettings validates m and returns it in name order, so the written
// configuration is deterministic.
func sortedSettings(m map[string]string) ([]setting, error) {
	var out []setting
	for name, value := range m {
		if !settingName.MatchString(name) {
			return nil, fmt.Errorf("setting %q: not a parameter name", name)
		}
		if strings.ContainsAny(value, "\n\r\x00") {
			return nil, fmt.Errorf("setting %s: value contains a line break or NUL", name)
		}
		out = append(out, setting{name, value})
	}
	slices.SortFunc(out, func(a, b setting) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// quoteConf quotes a postgresql.conf value: the parser undoes backslash
// escapes and doubled single quotes inside '...', see
// https://www.postgresql.org/docs/current/config-setting.html
func quoteConf(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}

// appendConf appends settings to postgresql.conf; later lines win over
// initdb's.
func appendConf(path string, settings []setting) error {
	var b strings.Builder
	b.WriteString("\n# added by pitr scratch\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s.name, quoteConf(s.value))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	if err := f.Close(); err != nil {
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
