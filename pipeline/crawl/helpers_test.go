package crawl

import "os"

// pythonPath is the interpreter of the interop checks: $MMPIPE_PYTHON, else
// /usr/bin/python3 (Debian's, where python3-lmdb and python3-pil install).
func pythonPath() string {
	if p := os.Getenv("MMPIPE_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}
