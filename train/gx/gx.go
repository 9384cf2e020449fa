// Package gx is mmpipe's GoMLX layer: it picks the GoMLX backend, compiles
// graph functions into programs that run on host float32/int32 slices, and
// wraps a GoMLX graph as a [sparse.Op], the one forward + vector–Jacobian
// boundary through which a model chains GoMLX's dense computations with
// mmpipe's native sparse kernels (train/sparse).
//
// # Backends
//
// The backend comes from GOMLX_BACKEND: "go" (the default, GoMLX's pure-Go
// backend, run with ops_sequential unless ops_parallel is given, see
// NewBackend; build with GOEXPERIMENT=simd on AVX2/AVX-512 machines for its
// vectorised matrix products) or "xla:<plugin>" (a PJRT plugin, e.g.
// "xla:cuda" or "xla:/abs/path/pjrt_c_api_cuda_plugin.so"), which needs a
// binary built with `-tags xla` (cgo) — see the README's GPU section.
//
// # Parameters live on the host
//
// A model keeps its parameters, optimiser moments and random streams in Go
// slices, passes the parameters to its programs as inputs and gets their
// gradients back as outputs. Checkpoints, exact resume and optimisers are
// therefore the same for GoMLX models as for the native ones, and random
// draws (dropout masks) come from the run's training stream.
package gx

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // GoMLX's pure-Go backend, "go"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// EnvBackend is the environment variable that names the backend.
const EnvBackend = "GOMLX_BACKEND"

// DefaultBackend is the backend used when EnvBackend is unset.
const DefaultBackend = "go"

// BackendConfig returns the backend configuration in effect: $GOMLX_BACKEND,
// or DefaultBackend.
func BackendConfig() string {
	if c := strings.TrimSpace(os.Getenv(EnvBackend)); c != "" {
		return c
	}
	return DefaultBackend
}

// NewBackend opens the backend named by config ("" means BackendConfig()).
func NewBackend(config string) (b compute.Backend, err error) {
	if config == "" {
		config = BackendConfig()
	}
	name, opts, _ := strings.Cut(config, ":")
	if name == "go" && !strings.Contains(opts, "ops_parallel") && !strings.Contains(opts, "ops_sequential") {
		// compute v0.1.0's pure-Go backend can deadlock when it runs graph
		// nodes in parallel: two matrix products on worker goroutines each
		// wait in workerspool.Saturate for a free worker that never comes
		// (seen with 2 cores). Running nodes one at a time keeps each
		// product's own parallelism and avoids it.
		if opts != "" {
			opts += ","
		}
		config = "go:" + opts + "ops_sequential"
	}
	if name == "xla" && !xlaLinked {
		return nil, fmt.Errorf("%s=%q: this mmpipe binary was built without the XLA backend; rebuild with `go build -tags xla` (cgo) and give a PJRT plugin (see the README's GPU section)", EnvBackend, config)
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("gomlx backend %q (%s): %v", config, EnvBackend, r)
		}
	}()
	b, err = compute.NewWithConfig(config)
	if err != nil {
		return nil, fmt.Errorf("gomlx backend %q: %w", config, err)
	}
	return b, nil
}

// Program is a compiled graph function. GoMLX compiles one graph per
// distinct set of input shapes and caches it, so a model that feeds a few
// shape buckets pays each compilation once.
type Program struct {
	name string
	exec *graph.Exec
}

// NewProgram builds a program from fn, which gets one node per input and
// returns the outputs. maxShapes bounds the number of compiled shape
// variants kept (0 keeps GoMLX's default of 32).
func NewProgram(b compute.Backend, name string, maxShapes int, fn func(in []*graph.Node) []*graph.Node) (*Program, error) {
	e, err := graph.NewExec(b, fn)
	if err != nil {
		return nil, fmt.Errorf("gomlx program %s: %w", name, err)
	}
	e = e.WithName(name)
	if maxShapes > 0 {
		e.SetMaxCache(maxShapes)
	}
	return &Program{name: name, exec: e}, nil
}

// Run executes the program. Inputs are *tensors.Tensor values or Go slices
// (see [F32] and [I32] for shaped host data); the outputs are returned as
// tensors that the caller must release with [Release] (or read with
// [CopyF32], which releases).
func (p *Program) Run(args ...any) (out []*tensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gomlx program %s: %v", p.name, r)
		}
	}()
	out, err = p.exec.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("gomlx program %s: %w", p.name, err)
	}
	return out, nil
}

// Close releases the compiled graphs.
func (p *Program) Close() { p.exec.Finalize() }

// F32 wraps host float32 data with the given dimensions as a tensor input.
func F32(data []float32, dims ...int) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// I32 wraps host int32 data with the given dimensions as a tensor input.
func I32(data []int32, dims ...int) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// CopyF32 copies a float32 output tensor into dst (which must have the
// tensor's size) and releases the tensor.
func CopyF32(dst []float32, t *tensors.Tensor) error {
	defer Release(t)
	if t.Size() != len(dst) {
		return fmt.Errorf("gomlx output %s has %d values, want %d", t.Shape(), t.Size(), len(dst))
	}
	return tensors.ConstFlatData(t, func(flat []float32) { copy(dst, flat) })
}

// Scalar returns a scalar float32 output as float64 and releases it.
func Scalar(t *tensors.Tensor) (float64, error) {
	var v [1]float32
	if err := CopyF32(v[:], t); err != nil {
		return 0, err
	}
	return float64(v[0]), nil
}

// Release frees tensors (on the host and on the device).
func Release(ts ...*tensors.Tensor) {
	for _, t := range ts {
		if t != nil {
			_ = t.FinalizeAll()
		}
	}
}

var errShape = errors.New("shape mismatch")

// XLALinked reports whether this binary was built with the XLA backend
// (-tags xla).
func XLALinked() bool { return xlaLinked }
