package gx

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"

	"github.com/mmpipe/mmpipe/train/sparse"
)

func TestNewBackendDefaultAndXLAWithoutTag(t *testing.T) {
	t.Setenv(EnvBackend, "")
	b, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() == "" {
		t.Fatal("backend without a name")
	}
	if !xlaLinked {
		if _, err := NewBackend("xla:cuda"); err == nil {
			t.Fatal("xla backend accepted by a binary built without -tags xla")
		}
	}
	if _, err := NewBackend("nosuchbackend"); err == nil {
		t.Fatal("unknown backend accepted")
	}
}

// TestOpChainMatchesFiniteDifferences chains a native SpMM (A·X) with a
// GoMLX op tanh((A·X)·W) and checks the chained VJPs against central finite
// differences of L = Σ C ⊙ out, computed independently in float64.
func TestOpChainMatchesFiniteDifferences(t *testing.T) {
	b, err := NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n, d, e = 5, 3, 4
	A, err := sparse.NewCSR(n, n, []int32{0, 0, 1, 2, 3, 4, 4}, []int32{1, 3, 2, 2, 0, 1, 4}, []float32{0.5, -1, 2, 1, 0.3, 0.7, -0.4})
	if err != nil {
		t.Fatal(err)
	}
	X, W, C := sparse.NewMat(n, d), sparse.NewMat(d, e), sparse.NewMat(n, e)
	for _, m := range []sparse.Mat{X, W, C} {
		for k := range m.Data {
			m.Data[k] = float32(rng.NormFloat64())
		}
	}
	spmm := &sparse.SpMMOp{A: A, Workers: 1}
	dense, err := NewOp(b, "tanhdense", func(in []*graph.Node) *graph.Node {
		return graph.Tanh(graph.MatMul(in[0], in[1]))
	})
	if err != nil {
		t.Fatal(err)
	}
	ax, err := spmm.Forward([]sparse.Mat{X})
	if err != nil {
		t.Fatal(err)
	}
	axCopy := ax.Clone()
	out, err := dense.Forward([]sparse.Mat{axCopy, W})
	if err != nil {
		t.Fatal(err)
	}
	if out.Rows != n || out.Cols != e {
		t.Fatalf("out %d×%d", out.Rows, out.Cols)
	}
	gs, err := dense.VJP(C)
	if err != nil {
		t.Fatal(err)
	}
	gx, err := spmm.VJP(gs[0])
	if err != nil {
		t.Fatal(err)
	}
	// float64 reference.
	loss := func(x, w []float64) float64 {
		var l float64
		for r := 0; r < n; r++ {
			ax := make([]float64, d)
			cols, vals := A.Row(r)
			for k, c := range cols {
				for j := 0; j < d; j++ {
					ax[j] += float64(vals[k]) * x[int(c)*d+j]
				}
			}
			for j := 0; j < e; j++ {
				var s float64
				for k := 0; k < d; k++ {
					s += ax[k] * w[k*e+j]
				}
				l += float64(C.Data[r*e+j]) * math.Tanh(s)
			}
		}
		return l
	}
	x64, w64 := f64(X.Data), f64(W.Data)
	check := func(name string, p []float64, got []float32) {
		const h = 1e-6
		for k := range p {
			orig := p[k]
			p[k] = orig + h
			lp := loss(x64, w64)
			p[k] = orig - h
			lm := loss(x64, w64)
			p[k] = orig
			want := (lp - lm) / (2 * h)
			if math.Abs(float64(got[k])-want) > 1e-4*(1+math.Abs(want)) {
				t.Errorf("%s[%d]: VJP %v, finite difference %v", name, k, got[k], want)
			}
		}
	}
	check("X", x64, gx[0].Data)
	check("W", w64, gs[1].Data)
	if _, err := dense.VJP(sparse.NewMat(n+1, e)); err == nil {
		t.Error("VJP accepted a gradient of the wrong shape")
	}
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for k, x := range v {
		out[k] = float64(x)
	}
	return out
}

// TestXLAWithoutPlugin runs only in binaries built with -tags xla: a plugin
// path that does not exist must give an error, not a panic or a download.
func TestXLAWithoutPlugin(t *testing.T) {
	if !xlaLinked {
		t.Skip("built without -tags xla")
	}
	t.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	if _, err := NewBackend("xla:/nonexistent/pjrt_c_api_cuda_plugin.so"); err == nil {
		t.Fatal("xla backend with a missing plugin accepted")
	} else {
		t.Log(err)
	}
}
