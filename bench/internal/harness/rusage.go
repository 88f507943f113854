package harness

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BecomeSubreaper makes orphaned descendants (daemonized background
// processes) our children, so that waiting for them adds their CPU time and
// memory to RUSAGE_CHILDREN.
func BecomeSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

// ReapAll waits until every remaining descendant has exited, at most wait.
func ReapAll(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.ECHILD) {
			return nil
		}
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return err
		}
		if pid > 0 {
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("background processes still running after %v", wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Usage is the CPU time and peak memory of processes, from getrusage or wait4.
type Usage struct {
	UserS, SysS float64
	MaxRSSKiB   int64 // ru_maxrss: the largest single process
}

// UsageOf converts a struct rusage.
func UsageOf(ru *syscall.Rusage) Usage {
	return Usage{UserS: seconds(ru.Utime), SysS: seconds(ru.Stime), MaxRSSKiB: ru.Maxrss}
}

// Children returns the usage of every child waited for so far (with
// BecomeSubreaper and ReapAll: every descendant).
func Children() (Usage, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return Usage{}, err
	}
	return UsageOf(&ru), nil
}

func seconds(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// ProcCPU returns a process's user+system CPU seconds from /proc; pid 0
// (none given) has used none.
func ProcCPU(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	ut, _ := strconv.ParseFloat(f[11], 64)                   // field 14
	st, _ := strconv.ParseFloat(f[12], 64)                   // field 15
	return (ut + st) / 100, nil                              // USER_HZ is 100 on Linux
}

// MachineBusy returns the busy CPU seconds of all CPUs since boot.
func MachineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, err
		}
		busy += v
	}
	return busy / 100, nil
}

// CPUMeter measures MinIO's and the machine's CPU over an interval.
type CPUMeter struct {
	minioPID      int
	minio0, busy0 float64
}

// StartCPU starts measuring; minioPID 0 means no MinIO to measure.
func StartCPU(minioPID int) (*CPUMeter, error) {
	m := &CPUMeter{minioPID: minioPID}
	var err error
	if m.minio0, err = ProcCPU(minioPID); err != nil {
		return nil, err
	}
	if m.busy0, err = MachineBusy(); err != nil {
		return nil, err
	}
	return m, nil
}

// Stop returns MinIO's CPU seconds and the machine's busy CPU seconds since StartCPU.
func (m *CPUMeter) Stop() (minioS, machineS float64, err error) {
	mi, err := ProcCPU(m.minioPID)
	if err != nil {
		return 0, 0, err
	}
	b, err := MachineBusy()
	if err != nil {
		return 0, 0, err
	}
	return mi - m.minio0, b - m.busy0, nil
}

// WaitIdle waits until the machine's CPUs are less than 10 % busy and
// some task waited on I/O less than 10 % of the time (/proc/pressure/io),
// both over half a second, at most maxWait. The disk matters as much as
// the CPUs: a run started while an earlier step's deletes (ext4 with
// discard) or write-back still ran waits behind them in every fsync. When
// the machine never is idle, it says so on stderr and returns busy true
// with the last busy fraction (CPU or I/O, whichever is larger): the
// caller records it, and the measurement goes ahead.
func WaitIdle(maxWait time.Duration) (frac float64, busy bool, err error) {
	const window, limit = 500 * time.Millisecond, 0.10
	deadline := time.Now().Add(maxWait)
	start := time.Now()
	for {
		b0, err := MachineBusy()
		if err != nil {
			return 0, false, err
		}
		io0, ioOK := IOStall()
		time.Sleep(window)
		b1, err := MachineBusy()
		if err != nil {
			return 0, false, err
		}
		frac = (b1 - b0) / (window.Seconds() * float64(runtime.NumCPU()))
		if io1, ok := IOStall(); ok && ioOK {
			frac = max(frac, (io1-io0)/window.Seconds())
		}
		if frac < limit {
			return frac, false, nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "machine still %.0f%% busy (CPU or I/O) after %v; measuring anyway\n", 100*frac, time.Since(start).Round(time.Second))
			return frac, true, nil
		}
	}
}

// IOStall returns the seconds some task has waited on I/O since boot
// (the "some" total of /proc/pressure/io); ok is false without PSI.
func IOStall() (float64, bool) {
	b, err := os.ReadFile("/proc/pressure/io")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "total="); ok {
			us, err := strconv.ParseFloat(v, 64)
			return us / 1e6, err == nil
		}
	}
	return 0, false
}

// TreeCPU returns the user+system CPU seconds of a server process and its
// children: its own, what its children that exited and were waited for
// used (cutime, cstime), and what its live children have used so far. The
// difference of two calls is what the server spent in between (PostgreSQL:
// the postmaster, a walsender or backend, the checkpointer); pid 0 is none.
func TreeCPU(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	own, err := procTimes(pid, true)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile: the parent's cutime has it
		}
		f := statFields(string(b))
		if len(f) < 15 || f[1] != strconv.Itoa(pid) { // field 4: ppid
			continue
		}
		if t, err := procTimes(child, true); err == nil {
			own += t
		}
	}
	return own, nil
}

// procTimes is utime+stime of pid, plus cutime+cstime with children.
func procTimes(pid int, children bool) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := statFields(string(b))
	if len(f) < 15 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	idx := []int{11, 12} // fields 14, 15
	if children {
		idx = append(idx, 13, 14) // fields 16, 17
	}
	var t float64
	for _, i := range idx {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, err
		}
		t += v
	}
	return t / 100, nil // USER_HZ is 100 on Linux
}

// statFields splits /proc/PID/stat after the command name: fields 3 (state) on.
func statFields(s string) []string {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil
	}
	return strings.Fields(s[i+2:])
}
