package onnx

import (
	"math"

	"github.com/mmpipe/mmpipe/extract/onnx/internal/modelgen"
)

// A pure-Go forward pass of the generated networks, written from their
// definitions (not from the ONNX graphs), in float64. Matrices are
// [rows][cols]; weights are [in, out] row-major as in modelgen.

type mat [][]float64

func newMat(r, c int) mat {
	m := make(mat, r)
	for i := range m {
		m[i] = make([]float64, c)
	}
	return m
}

// linear is x @ W + b (b may be empty).
func linear(x mat, w, b modelgen.Tensor) mat {
	in, out := int(w.Dims[0]), int(w.Dims[1])
	y := newMat(len(x), out)
	for r := range x {
		for o := range out {
			s := 0.0
			if b.Data != nil {
				s = float64(b.Data[o])
			}
			for i := range in {
				s += x[r][i] * float64(w.Data[i*out+o])
			}
			y[r][o] = s
		}
	}
	return y
}

func layerNorm(x mat, g, b modelgen.Tensor, eps float64) mat {
	y := newMat(len(x), len(x[0]))
	for r, row := range x {
		mean := 0.0
		for _, v := range row {
			mean += v
		}
		mean /= float64(len(row))
		vr := 0.0
		for _, v := range row {
			vr += (v - mean) * (v - mean)
		}
		vr /= float64(len(row))
		inv := 1 / math.Sqrt(vr+eps)
		for i, v := range row {
			y[r][i] = (v-mean)*inv*float64(g.Data[i]) + float64(b.Data[i])
		}
	}
	return y
}

func add(a, b mat) mat {
	y := newMat(len(a), len(a[0]))
	for r := range a {
		for i := range a[r] {
			y[r][i] = a[r][i] + b[r][i]
		}
	}
	return y
}

func gelu(x mat) mat {
	y := newMat(len(x), len(x[0]))
	for r := range x {
		for i, v := range x[r] {
			y[r][i] = 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
		}
	}
	return y
}

// attention is multi-head self-attention; mask[i][j] is added to the
// scores (nil: none).
func attention(x mat, blk *modelgen.Block, heads int, mask mat) mat {
	q, k, v := linear(x, blk.WQ, blk.BQ), linear(x, blk.WK, blk.BK), linear(x, blk.WV, blk.BV)
	t, w := len(x), len(x[0])
	dh := w / heads
	o := newMat(t, w)
	for h := range heads {
		for i := range t {
			scores := make([]float64, t)
			mx := math.Inf(-1)
			for j := range t {
				s := 0.0
				for d := range dh {
					s += q[i][h*dh+d] * k[j][h*dh+d]
				}
				s /= math.Sqrt(float64(dh))
				if mask != nil {
					s += mask[i][j]
				}
				scores[j] = s
				mx = math.Max(mx, s)
			}
			sum := 0.0
			for j := range scores {
				scores[j] = math.Exp(scores[j] - mx)
				sum += scores[j]
			}
			for j := range t {
				p := scores[j] / sum
				for d := range dh {
					o[i][h*dh+d] += p * v[j][h*dh+d]
				}
			}
		}
	}
	return linear(o, blk.WO, blk.BO)
}

func mlp(x mat, blk *modelgen.Block) mat {
	return linear(gelu(linear(x, blk.W1, blk.B1)), blk.W2, blk.B2)
}

func preLN(x mat, blk *modelgen.Block, heads int, mask mat, eps float64) mat {
	x = add(x, attention(layerNorm(x, blk.LN1G, blk.LN1B, eps), blk, heads, mask))
	return add(x, mlp(layerNorm(x, blk.LN2G, blk.LN2B, eps), blk))
}

func postLN(x mat, blk *modelgen.Block, heads int, mask mat, eps float64) mat {
	x = layerNorm(add(x, attention(x, blk, heads, mask)), blk.LN1G, blk.LN1B, eps)
	return layerNorm(add(x, mlp(x, blk)), blk.LN2G, blk.LN2B, eps)
}

// refViT computes image_embeds (unnormalised) and last_hidden_state of
// one image (CHW).
func refViT(v *modelgen.ViT, px []float32) (embeds []float64, hidden mat) {
	c := v.Cfg
	img, p, w := int(c.Image), int(c.Patch), int(c.Width)
	grid := img / p
	x := newMat(int(c.Tokens()), w)
	for o := range w {
		x[0][o] = float64(v.Class.Data[o])
	}
	for py := range grid {
		for pxi := range grid {
			t := 1 + py*grid + pxi
			for o := range w {
				s := 0.0
				for ch := range 3 {
					for i := range p {
						for j := range p {
							s += float64(px[ch*img*img+(py*p+i)*img+pxi*p+j]) *
								float64(v.PatchW.Data[((o*3+ch)*p+i)*p+j])
						}
					}
				}
				x[t][o] = s
			}
		}
	}
	for t := range x {
		for o := range w {
			x[t][o] += float64(v.Pos.Data[t*w+o])
		}
	}
	x = layerNorm(x, v.PreG, v.PreB, modelgen.LNEps)
	for i := range v.Blocks {
		x = preLN(x, &v.Blocks[i], int(c.Heads), nil, modelgen.LNEps)
	}
	pooled := layerNorm(mat{x[0]}, v.PostG, v.PostB, modelgen.LNEps)
	return linear(pooled, v.Proj, modelgen.Tensor{})[0], x
}

// refBERT computes last_hidden_state of one unpadded text.
func refBERT(m *modelgen.BERT, ids []int32) mat {
	w := int(m.Cfg.Width)
	x := newMat(len(ids), w)
	for j, id := range ids {
		for o := range w {
			x[j][o] = float64(m.Word.Data[int(id)*w+o]) + float64(m.Pos.Data[j*w+o])
			if m.WithTokenTypeIDs {
				x[j][o] += float64(m.Type.Data[o]) // token type 0
			}
		}
	}
	x = layerNorm(x, m.EmbG, m.EmbB, modelgen.BERTEps)
	for i := range m.Blocks {
		x = postLN(x, &m.Blocks[i], int(m.Cfg.Heads), nil, modelgen.BERTEps)
	}
	return x
}

// refCLIPText computes text_embeds (unnormalised) and last_hidden_state
// of one unpadded text.
func refCLIPText(m *modelgen.CLIPText, ids []int32) ([]float64, mat) {
	w := int(m.Cfg.Width)
	n := len(ids)
	x := newMat(n, w)
	for j, id := range ids {
		for o := range w {
			x[j][o] = float64(m.Tok.Data[int(id)*w+o]) + float64(m.Pos.Data[j*w+o])
		}
	}
	causal := newMat(n, n)
	for i := range n {
		for j := i + 1; j < n; j++ {
			causal[i][j] = modelgen.MaskValue
		}
	}
	for i := range m.Blocks {
		x = preLN(x, &m.Blocks[i], int(m.Cfg.Heads), causal, modelgen.LNEps)
	}
	x = layerNorm(x, m.FinalG, m.FinB, modelgen.LNEps)
	eos := 0
	for j, id := range ids {
		if id > ids[eos] {
			eos = j
		}
	}
	return linear(mat{x[eos]}, m.Proj, modelgen.Tensor{})[0], x
}

func normalized(v []float64) []float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	n := math.Max(math.Sqrt(s), 1e-12)
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x / n
	}
	return out
}

func meanRows(x mat) []float64 {
	out := make([]float64, len(x[0]))
	for _, row := range x {
		for i, v := range row {
			out[i] += v / float64(len(x))
		}
	}
	return out
}
