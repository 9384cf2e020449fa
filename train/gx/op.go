package gx

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mmpipe/mmpipe/train/sparse"
)

// Op is a [sparse.Op] whose forward pass is a GoMLX graph of its input
// matrices and whose vector–Jacobian product is GoMLX's reverse-mode
// gradient of ⟨out, g⟩ with respect to every input. A model chains it with
// the native Ops (graph propagation, gathers) in one step: Forward in order,
// the loss gradient, VJP in reverse order.
type Op struct {
	name string
	fwd  *Program
	vjp  *Program
	in   []sparse.Mat
	out  sparse.Mat
	done bool
}

// NewOp builds an Op from fn, the dense function of the inputs (each a
// [rows, cols] float32 node) that returns one [rows, cols] node.
func NewOp(b compute.Backend, name string, fn func(in []*graph.Node) *graph.Node) (*Op, error) {
	fwd, err := NewProgram(b, name+".forward", 0, func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{fn(in)}
	})
	if err != nil {
		return nil, err
	}
	vjp, err := NewProgram(b, name+".vjp", 0, func(in []*graph.Node) []*graph.Node {
		x, g := in[:len(in)-1], in[len(in)-1]
		return graph.Gradient(graph.ReduceAllSum(graph.Mul(fn(x), g)), x...)
	})
	if err != nil {
		return nil, err
	}
	return &Op{name: name, fwd: fwd, vjp: vjp}, nil
}

func matTensor(m sparse.Mat) *tensors.Tensor { return F32(m.Data, m.Rows, m.Cols) }

// Forward computes the graph on the inputs. The inputs must stay unchanged
// until VJP (the Op keeps references, not copies).
func (o *Op) Forward(in []sparse.Mat) (sparse.Mat, error) {
	args := make([]any, len(in))
	for k, m := range in {
		args[k] = matTensor(m)
	}
	outs, err := o.fwd.Run(args...)
	if err != nil {
		return sparse.Mat{}, err
	}
	if len(outs) != 1 || outs[0].Shape().Rank() != 2 {
		Release(outs...)
		return sparse.Mat{}, fmt.Errorf("gomlx op %s: forward must return one rank-2 output", o.name)
	}
	dims := outs[0].Shape().Dimensions
	if o.out.Rows != dims[0] || o.out.Cols != dims[1] {
		o.out = sparse.NewMat(dims[0], dims[1])
	}
	if err := CopyF32(o.out.Data, outs[0]); err != nil {
		return sparse.Mat{}, fmt.Errorf("gomlx op %s: %w", o.name, err)
	}
	o.in, o.done = in, true
	return o.out, nil
}

// VJP returns gᵀ·∂out/∂in_k for every input of the last Forward.
func (o *Op) VJP(g sparse.Mat) ([]sparse.Mat, error) {
	if !o.done {
		return nil, fmt.Errorf("gomlx op %s: VJP called before Forward", o.name)
	}
	if g.Rows != o.out.Rows || g.Cols != o.out.Cols {
		return nil, fmt.Errorf("gomlx op %s: gradient is %d×%d, output %d×%d: %w", o.name, g.Rows, g.Cols, o.out.Rows, o.out.Cols, errShape)
	}
	args := make([]any, 0, len(o.in)+1)
	for _, m := range o.in {
		args = append(args, matTensor(m))
	}
	args = append(args, matTensor(g))
	outs, err := o.vjp.Run(args...)
	if err != nil {
		return nil, err
	}
	grads := make([]sparse.Mat, len(o.in))
	for k, m := range o.in {
		grads[k] = sparse.NewMat(m.Rows, m.Cols)
		if err := CopyF32(grads[k].Data, outs[k]); err != nil {
			Release(outs[k+1:]...)
			return nil, fmt.Errorf("gomlx op %s: input %d: %w", o.name, k, err)
		}
	}
	return grads, nil
}

var _ sparse.Op = (*Op)(nil)
