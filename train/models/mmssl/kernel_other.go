//go:build !amd64 || purego

package mmssl

// useAsm is false where there is no assembly kernel.
const useAsm = false

func gemm6x16acc(out *float32, ldo int, a *float32, lda int, bt *float32, ldb int, k int) {
	panic("mmssl: no assembly kernel")
}
