package testenv

import "os"

// Tests never read the machine's pitr configuration: a /etc/pitr/pitr.yaml
// left by an installed package (or a user) would otherwise change what
// every pitr the tests start reads, the servers' archive_command and
// restore_command included, since they inherit this process's environment.
// A test that wants a config file sets PITR_CONFIG itself (t.Setenv or the
// child's Env), which wins over this default.
func init() {
	if _, ok := os.LookupEnv("PITR_CONFIG"); !ok {
		_ = os.Setenv("PITR_CONFIG", os.DevNull)
	}
}
