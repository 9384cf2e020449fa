//go:build xla

package gx

import _ "github.com/gomlx/go-xla/compute/xla" // GoMLX's XLA backend (PJRT plugins), cgo

// xlaLinked reports whether the XLA backend is compiled in (-tags xla).
const xlaLinked = true
