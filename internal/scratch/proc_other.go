//go:build !linux

package scratch

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}

// childrenOf needs /proc; elsewhere Kill reaches the postmaster only, and
// its children exit when they notice it is gone.
func childrenOf(int) []int { return nil }
