//go:build !xla

package gx

// xlaLinked reports whether the XLA backend is compiled in (-tags xla).
const xlaLinked = false
