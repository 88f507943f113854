package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/internal/pgserver"
)

// Setting is one server parameter written to postgresql.auto.conf.
type Setting struct{ Name, Value string }

// recoverySignal is the file WriteRecoveryConfig creates, see
// https://www.postgresql.org/docs/current/recovery-config.html
const recoverySignal = "recovery.signal"

// Markers of the lines WriteRecoveryConfig writes and disables.
const (
	disabledPrefix = "# disabled by pitr restore: "
	addedPrefix    = "# added by pitr restore "
)

// WriteRecoveryConfig prepares dataDir for archive recovery: an empty
// recovery.signal, and settings appended to postgresql.auto.conf under a
// "# added by pitr restore <now>" line. Lines of that file that set a
// recovery_target* parameter, restore_command, recovery_end_command or
// any parameter in settings are commented out first, so a backup's old
// recovery settings cannot mix with ours and a second run does not
// duplicate them. The file is replaced atomically and keeps its mode and
// owner; new files get the data directory's owner when we are root.
func WriteRecoveryConfig(dataDir string, settings []Setting, now time.Time) error {
	ours := make([]pgserver.Setting, len(settings))
	for i, s := range settings {
		ours[i] = pgserver.Setting(s)
	}
	if err := pgserver.CheckSettings(ours); err != nil {
		return fmt.Errorf("recovery %w", err)
	}
	dirInfo, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("write recovery config: %w", err)
	}
	err = pgserver.EditFile(dataDir, pgserver.AutoConf, pgserver.Edit{
		Settings:       ours,
		Disable:        disables,
		DisabledPrefix: disabledPrefix,
		Header:         addedPrefix + now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return fmt.Errorf("write recovery config: %w", err)
	}
	if err := pgserver.WriteFile(filepath.Join(dataDir, recoverySignal), nil, 0o600, dirInfo); err != nil {
		return fmt.Errorf("write recovery config: %w", err)
	}
	return nil
}

// disables reports whether a line setting name (besides ours) must be
// commented out: it would change recovery.
func disables(name string) bool {
	return strings.HasPrefix(name, "recovery_target") ||
		name == "restore_command" || name == "recovery_end_command"
}
