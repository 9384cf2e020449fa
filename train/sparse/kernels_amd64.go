//go:build amd64 && !purego

package sparse

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2+FMA assembly kernels; it is set once at start
// from the CPU's features and never changed.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// spmmRow64 computes out[0:64] = Σ_k vals[k] · in[cols[k]·stride : +64]
// (stride in elements).
//
//go:noescape
func spmmRow64(out, in *float32, cols *int32, vals *float32, nnz, stride int)

// spmmRow32 is spmmRow64 for 32 columns.
//
//go:noescape
func spmmRow32(out, in *float32, cols *int32, vals *float32, nnz, stride int)

// spmmRow8 is spmmRow64 for 8 columns.
//
//go:noescape
func spmmRow8(out, in *float32, cols *int32, vals *float32, nnz, stride int)

// gemm4x16 computes out[r·ldo + j] = Σ_{p<k} a[r·lda + p] · bt[p·ldb + j]
// for r < 4 and j < 16 (all strides in elements).
//
//go:noescape
func gemm4x16(out *float32, ldo int, a *float32, lda int, bt *float32, ldb int, k int)

// addScale computes acc[i] = (acc[i] + o[i]) · scale for i < n (n a
// multiple of 8).
//
//go:noescape
func addScale(acc, o *float32, n int, scale float32)

// adamStep applies Adam's dense update without weight decay to n elements
// (a multiple of 8) with c = {β₁, 1−β₁, β₂, 1−β₂, lr/bc₁, 1/√bc₂, eps},
// operation for operation as the Go loop (no fused multiply-add), so the
// results are identical.
//
//go:noescape
func adamStep(p, gr, m, v *float32, n int, c *[7]float32)
