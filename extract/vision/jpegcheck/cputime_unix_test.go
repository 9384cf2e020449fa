//go:build unix

package jpegcheck

import "syscall"

// cpuNanos returns the process's user + system CPU time: on a shared
// machine, CPU time per operation is steadier than wall time.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
