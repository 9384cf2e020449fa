//go:build amd64 && !purego

package mmssl

import "golang.org/x/sys/cpu"

// useAsm selects the AVX2+FMA kernel.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// gemm6x16acc computes out[r·ldo + j] += Σ_{p<k} a[r·lda + p] · bt[p·ldb + j]
// for r < 6 and j < 16 (strides in elements).
//
//go:noescape
func gemm6x16acc(out *float32, ldo int, a *float32, lda int, bt *float32, ldb int, k int)
