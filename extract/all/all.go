// Package all gathers every encoder mmpipe ships into one registry, for the
// CLI: the built-in weight-free encoders and the ONNX Runtime presets.
package all

import (
	"maps"
	"slices"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/builtin"
	"github.com/mmpipe/mmpipe/extract/onnx"
)

// Factories returns a fresh map of every encoder by registry name.
func Factories() map[string]extract.Factory {
	out := map[string]extract.Factory{}
	for _, src := range []map[string]extract.Factory{
		builtin.Factories(),
		onnx.Factories(), // clip-vit-b32, clip-vit-b32-text, sbert-minilm, xlm-roberta-base, pmmrec...
	} {
		maps.Copy(out, src)
	}
	return out
}

// Names returns the registry names of fs, sorted.
func Names(fs map[string]extract.Factory) []string {
	return slices.Sorted(maps.Keys(fs))
}
