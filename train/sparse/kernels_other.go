//go:build !amd64 || purego

package sparse

// useAVX2 is false where there are no assembly kernels.
const useAVX2 = false

func spmmRow64(out, in *float32, cols *int32, vals *float32, nnz, stride int) {
	panic("sparse: no assembly kernels")
}
func spmmRow32(out, in *float32, cols *int32, vals *float32, nnz, stride int) {
	panic("sparse: no assembly kernels")
}
func spmmRow8(out, in *float32, cols *int32, vals *float32, nnz, stride int) {
	panic("sparse: no assembly kernels")
}
func gemm4x16(out *float32, ldo int, a *float32, lda int, bt *float32, ldb int, k int) {
	panic("sparse: no assembly kernels")
}
func addScale(acc, o *float32, n int, scale float32) { panic("sparse: no assembly kernels") }
func adamStep(p, gr, m, v *float32, n int, c *[7]float32) {
	panic("sparse: no assembly kernels")
}
