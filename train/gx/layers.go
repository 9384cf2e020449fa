package gx

import (
	"math"

	"github.com/gomlx/gomlx/core/graph"
)

// Dense is x·w + b for x [n, in], w [in, out], b [out].
func Dense(x, w, b *graph.Node) *graph.Node {
	return graph.Add(graph.MatMul(x, w), graph.ExpandDims(b, 0))
}

// GELU is the exact (erf) GELU, x·½·(1 + erf(x/√2)), as PyTorch's default.
func GELU(x *graph.Node) *graph.Node {
	return graph.Mul(graph.MulScalar(x, 0.5), graph.AddScalar(graph.Erf(graph.MulScalar(x, 1/math.Sqrt2)), 1))
}

// LayerNorm normalises x over its last axis: (x − mean)/√(var + eps)·g + b,
// with g and b of the last axis' size. It divides by a square root rather
// than multiplying by Rsqrt, which has no gradient in GoMLX v0.28.
func LayerNorm(x, g, b *graph.Node, eps float64) *graph.Node {
	mean := graph.ReduceAndKeep(x, graph.ReduceMean, -1)
	xc := graph.Sub(x, mean)
	v := graph.ReduceAndKeep(graph.Square(xc), graph.ReduceMean, -1)
	y := graph.Div(xc, graph.Sqrt(graph.AddScalar(v, eps)))
	return graph.Add(graph.Mul(y, graph.ExpandDims(g, 0)), graph.ExpandDims(b, 0))
}
