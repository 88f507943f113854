//go:build !linux

package testenv

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}
