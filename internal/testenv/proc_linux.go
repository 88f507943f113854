package testenv

import "syscall"

// setParentDeathSignal makes a server die with the test binary, even when
// -timeout kills it before any cleanup runs.
func setParentDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) {
	attr.Pdeathsig = sig
}
