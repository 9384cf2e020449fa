package pmmrec

import (
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mmpipe/mmpipe/train/gx"
)

type graphNode = graph.Node

func f32(data []float32, dims ...int) *tensors.Tensor { return gx.F32(data, dims...) }

// runGraphScalar compiles fn on the go backend and returns its scalar
// output for args.
func runGraphScalar(t *testing.T, fn func(in []*graphNode) *graphNode, args ...any) float64 {
	t.Helper()
	b, err := gx.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	p, err := gx.NewProgram(b, "test", 0, func(in []*graph.Node) []*graph.Node { return []*graph.Node{fn(in)} })
	if err != nil {
		t.Fatal(err)
	}
	outs, err := p.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	v, err := gx.Scalar(outs[0])
	if err != nil {
		t.Fatal(err)
	}
	return v
}
