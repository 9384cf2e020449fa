// Package sparse is mmpipe's native training layer: the parts of a
// recommender's step that GoMLX's pure-Go backend runs about 30× too slowly
// (research/deps.md §2.5), written as plain Go kernels over both cores.
//
//   - [CSR] matrices, built from a split's training interactions, and the
//     symmetric normalised user–item graph D^-1/2 A D^-1/2 ([NormalizedAdjacency]);
//   - parallel sparse × dense products over row blocks balanced by non-zeros
//     ([CSR.Mul], and [CSR.MulAcc], which also accumulates the result, for
//     LightGCN's layer sum) and their exact backward pass, the transpose
//     product ([CSR.MulT]; the same kernel for a symmetric graph);
//   - embedding tables: row gathers ([Gather]), scatter-add of gradients
//     ([ScatterAdd]) and row-sparse gradients ([RowGrad]);
//   - Adam and AdamW with PyTorch's dense semantics ([Adam.Update]) and the
//     lazy, row-sparse semantics of PyTorch's SparseAdam ([Adam.UpdateRows]);
//   - dense products for scoring ([MulABtT], [MulABt]).
//
// On amd64 CPUs with AVX2 and FMA the inner loops of the sparse product and
// of the scoring product are assembly kernels (kernels_amd64.s): a CSR row
// of up to 64 columns accumulated in eight YMM registers, and a 4 × 16
// register-blocked matrix product. Elsewhere (or with the purego build tag)
// the same loops run in Go. The two paths round differently (fused
// multiply-add), so bit-identical results hold per machine, not across CPU
// kinds.
//
// [Op] is the one boundary through which models chain these kernels with a
// dense part computed elsewhere (GoMLX, or plain Go): a forward pass and a
// vector–Jacobian product. [CheckVJP] tests any Op against central finite
// differences.
//
// Every kernel is deterministic: each output element is computed by exactly
// one goroutine in a fixed order, so results do not depend on the number of
// workers. A workers argument ≤ 0 means runtime.GOMAXPROCS(0). Nothing here
// allocates a users × items matrix: scoring works on blocks of users.
package sparse
