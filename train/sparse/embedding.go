package sparse

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Gather copies rows of table into out: out row b = table row idx[b].
func Gather(out, table Mat, idx []int32) error {
	if out.Rows != len(idx) || out.Cols != table.Cols || len(out.Data) != out.Rows*out.Cols {
		return fmt.Errorf("gather: %d indices into a %d×%d output from a %d-column table", len(idx), out.Rows, out.Cols, table.Cols)
	}
	d := table.Cols
	for b, r := range idx {
		if r < 0 || int(r) >= table.Rows {
			return fmt.Errorf("gather: index %d = %d outside [0, %d)", b, r, table.Rows)
		}
		copy(out.Data[b*d:(b+1)*d], table.Data[int(r)*d:int(r)*d+d])
	}
	return nil
}

// ScatterAdd adds src's rows into dst: dst row idx[b] += src row b, in
// order of b (so repeated indices sum deterministically).
func ScatterAdd(dst Mat, idx []int32, src Mat) error {
	if src.Rows != len(idx) || src.Cols != dst.Cols {
		return fmt.Errorf("scatter-add: %d indices, source %d×%d, destination %d columns", len(idx), src.Rows, src.Cols, dst.Cols)
	}
	d := dst.Cols
	for b, r := range idx {
		if r < 0 || int(r) >= dst.Rows {
			return fmt.Errorf("scatter-add: index %d = %d outside [0, %d)", b, r, dst.Rows)
		}
		axpy(1, src.Data[b*d:(b+1)*d], dst.Data[int(r)*d:int(r)*d+d])
	}
	return nil
}

// InitNormal fills m with independent N(0, std²) draws from rng, in row
// order (PyTorch's nn.init.normal_ for the same purpose; the streams
// differ).
func InitNormal(m Mat, std float64, rng *rand.Rand) {
	for k := range m.Data {
		m.Data[k] = float32(rng.NormFloat64() * std)
	}
}

// RowGrad is a row-sparse gradient of a rows × Dim table: the distinct
// rows that received gradient (Rows, in order of first touch) and their
// summed gradient rows (Vals, len(Rows)·Dim). Reset makes it empty again in
// O(touched rows), so one RowGrad serves every step.
type RowGrad struct {
	Dim  int
	Rows []int32
	Vals []float32
	slot []int32 // table row → position in Rows, or -1
}

// NewRowGrad returns an empty gradient for a tableRows × dim table.
func NewRowGrad(tableRows, dim int) *RowGrad {
	g := &RowGrad{Dim: dim, slot: make([]int32, tableRows)}
	for k := range g.slot {
		g.slot[k] = -1
	}
	return g
}

// Reset empties the gradient.
func (g *RowGrad) Reset() {
	for _, r := range g.Rows {
		g.slot[r] = -1
	}
	g.Rows = g.Rows[:0]
	g.Vals = g.Vals[:0]
}

// Row returns the gradient row of table row r, adding a zero row if r
// has none yet.
func (g *RowGrad) Row(r int32) []float32 {
	s := g.slot[r]
	if s < 0 {
		s = int32(len(g.Rows))
		g.slot[r] = s
		g.Rows = append(g.Rows, r)
		g.Vals = slices.Grow(g.Vals, g.Dim)[:len(g.Vals)+g.Dim]
		clear(g.Vals[len(g.Vals)-g.Dim:])
	}
	return g.Vals[int(s)*g.Dim : int(s+1)*g.Dim : int(s+1)*g.Dim]
}

// Add accumulates scale·v into row r's gradient.
func (g *RowGrad) Add(r int32, scale float32, v []float32) {
	axpy(scale, v, g.Row(r))
}

// Dense returns the gradient as a dense tableRows × Dim matrix.
func (g *RowGrad) Dense() Mat {
	m := NewMat(len(g.slot), g.Dim)
	for k, r := range g.Rows {
		copy(m.Row(int(r)), g.Vals[k*g.Dim:(k+1)*g.Dim])
	}
	return m
}
