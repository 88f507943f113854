//go:build !linux

package scratch

import (
	"errors"
	"syscall"
)

func setParentDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}

// childrenOf needs /proc; elsewhere Kill reaches the postmaster only, and
// its children exit when they notice it is gone.
func childrenOf(int) []int { return nil }

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func isPostgres(int) bool { return true }
