//go:build !unix

package jpegcheck

func cpuNanos() int64 { return -1 }
