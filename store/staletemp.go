package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// tempPattern is the os.CreateTemp pattern of an atomic write of path:
// ".<name>.tmp-<pid>-<random>", in path's directory. The writer's process id
// tells a later writer whether the file is a leftover.
func tempPattern(path string) string {
	return "." + filepath.Base(path) + ".tmp-" + strconv.Itoa(os.Getpid()) + "-*"
}

// RemoveStaleTemps removes the temporary files that atomic writers of path
// which no longer run left next to it (a SIGKILL or a power cut skips the
// clean-up of an atomic write). Every atomic write calls it once its own file
// is in place; a stage that may skip rewriting a file calls it too.
// Temporaries of a running process (this one included) and of unknown form
// are kept. Best effort: errors are ignored.
func RemoveStaleTemps(path string) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	prefix := "." + base + ".tmp-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
