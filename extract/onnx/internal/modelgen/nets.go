package modelgen

import (
	"math"
	"math/rand/v2"
)

// Tensor is a float32 weight with its shape (row-major).
type Tensor struct {
	Dims []int64
	Data []float32
}

// rng draws weights.
type rng struct{ r *rand.Rand }

func newRNG(seed uint64) *rng { return &rng{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

// normal returns a tensor of N(mean, std²) values.
func (g *rng) normal(std, mean float64, dims ...int64) Tensor {
	t := Tensor{Dims: dims, Data: make([]float32, product(dims))}
	for i := range t.Data {
		t.Data[i] = float32(mean + std*g.r.NormFloat64())
	}
	return t
}

// Block is the weights of one transformer layer. Linear weights are
// [in, out] (x @ W + b).
type Block struct {
	LN1G, LN1B             Tensor // pre-LN: before attention; post-LN: after the attention residual
	WQ, BQ, WK, BK, WV, BV Tensor
	WO, BO                 Tensor
	LN2G, LN2B             Tensor
	W1, B1, W2, B2         Tensor // MLP: W1 [width, mlp], W2 [mlp, width]
}

func newBlock(g *rng, width, mlp int64) Block {
	std := 0.6 / math.Sqrt(float64(width))
	return Block{
		LN1G: g.normal(0.1, 1, width), LN1B: g.normal(0.1, 0, width),
		WQ: g.normal(std, 0, width, width), BQ: g.normal(0.05, 0, width),
		WK: g.normal(std, 0, width, width), BK: g.normal(0.05, 0, width),
		WV: g.normal(std, 0, width, width), BV: g.normal(0.05, 0, width),
		WO: g.normal(std, 0, width, width), BO: g.normal(0.05, 0, width),
		LN2G: g.normal(0.1, 1, width), LN2B: g.normal(0.1, 0, width),
		W1: g.normal(std, 0, width, mlp), B1: g.normal(0.05, 0, mlp),
		W2: g.normal(0.6/math.Sqrt(float64(mlp)), 0, mlp, width), B2: g.normal(0.05, 0, width),
	}
}

// builder adds transformer pieces to a graph.
type builder struct{ *Graph }

func (b builder) w(t Tensor, hint string) string { return b.Float32s(hint, t.Dims, t.Data) }

func (b builder) linear(x string, w, bias Tensor) string {
	y := b.Op("MatMul", x, b.w(w, "W"))
	if bias.Data == nil {
		return y
	}
	return b.Op("Add", y, b.w(bias, "b"))
}

func (b builder) layerNorm(x string, g, beta Tensor, eps float32) string {
	return b.Node("LayerNormalization", []string{x, b.w(g, "ln_g"), b.w(beta, "ln_b")},
		AttrInt("axis", -1), AttrFloat("epsilon", eps))
}

// gelu is the exact GELU, 0.5·x·(1 + erf(x/√2)), as PyTorch exports it.
func (b builder) gelu(x string) string {
	e := b.Op("Erf", b.Op("Div", x, b.Scalar(float32(math.Sqrt2))))
	return b.Op("Mul", b.Op("Mul", x, b.Op("Add", e, b.Scalar(1))), b.Scalar(0.5))
}

// attention is multi-head self-attention on x [B, T, W]; mask is an
// additive mask broadcastable to [B, H, T, T], or "".
func (b builder) attention(x string, blk *Block, heads, width int64, mask string) string {
	dh := width / heads
	split := b.Ints(0, 0, heads, dh)
	q := b.Node("Transpose", []string{b.Op("Reshape", b.linear(x, blk.WQ, blk.BQ), split)}, AttrInts("perm", 0, 2, 1, 3))
	k := b.Node("Transpose", []string{b.Op("Reshape", b.linear(x, blk.WK, blk.BK), split)}, AttrInts("perm", 0, 2, 3, 1))
	v := b.Node("Transpose", []string{b.Op("Reshape", b.linear(x, blk.WV, blk.BV), split)}, AttrInts("perm", 0, 2, 1, 3))
	s := b.Op("Mul", b.Op("MatMul", q, k), b.Scalar(float32(1/math.Sqrt(float64(dh)))))
	if mask != "" {
		s = b.Op("Add", s, mask)
	}
	p := b.Node("Softmax", []string{s}, AttrInt("axis", -1))
	o := b.Node("Transpose", []string{b.Op("MatMul", p, v)}, AttrInts("perm", 0, 2, 1, 3))
	o = b.Op("Reshape", o, b.Ints(0, 0, width))
	return b.linear(o, blk.WO, blk.BO)
}

func (b builder) mlp(x string, blk *Block) string {
	return b.linear(b.gelu(b.linear(x, blk.W1, blk.B1)), blk.W2, blk.B2)
}

// preLNBlock is x + attn(LN1(x)); then + mlp(LN2(·)) (CLIP).
func (b builder) preLNBlock(x string, blk *Block, heads, width int64, mask string, eps float32) string {
	x = b.Op("Add", x, b.attention(b.layerNorm(x, blk.LN1G, blk.LN1B, eps), blk, heads, width, mask))
	return b.Op("Add", x, b.mlp(b.layerNorm(x, blk.LN2G, blk.LN2B, eps), blk))
}

// postLNBlock is LN1(x + attn(x)); then LN2(· + mlp(·)) (BERT).
func (b builder) postLNBlock(x string, blk *Block, heads, width int64, mask string, eps float32) string {
	x = b.layerNorm(b.Op("Add", x, b.attention(x, blk, heads, width, mask)), blk.LN1G, blk.LN1B, eps)
	return b.layerNorm(b.Op("Add", x, b.mlp(x, blk)), blk.LN2G, blk.LN2B, eps)
}

// dimOf returns dimension i of x as a 1-D int64 tensor [1].
func (b builder) dimOf(x string, i int64) string {
	return b.Op("Slice", b.Op("Shape", x), b.Ints(i), b.Ints(i+1), b.Ints(0))
}

// l2norm divides x by its L2 norm over the last axis.
func (b builder) l2norm(x string) string {
	n := b.Op("Sqrt", b.Node("ReduceSum", []string{b.Op("Mul", x, x), b.Ints(-1)}, AttrInt("keepdims", 1)))
	return b.Op("Div", x, n)
}

// ViTConfig is the shape of a CLIP-style vision transformer.
type ViTConfig struct {
	Image, Patch, Width, Layers, Heads, MLP, Proj int64
	Seed                                          uint64
}

// CLIPViTB32 returns the shape of CLIP ViT-B/32's image tower (≈ 4.4 GMAC
// per image).
func CLIPViTB32() ViTConfig {
	return ViTConfig{Image: 224, Patch: 32, Width: 768, Layers: 12, Heads: 12, MLP: 3072, Proj: 512}
}

// ViT is a random-weight CLIP vision tower: patch embedding (a strided
// Conv without bias), class token, positions, pre-LayerNorm, pre-LN
// blocks, then last_hidden_state (before the post-LayerNorm, as Hugging
// Face's CLIPVisionModel returns it) and image_embeds = post-LN(class
// token) @ projection.
type ViT struct {
	Cfg                      ViTConfig
	PatchW                   Tensor // [width, 3, patch, patch]
	Class                    Tensor // [width]
	Pos                      Tensor // [tokens, width]
	PreG, PreB, PostG, PostB Tensor
	Blocks                   []Block
	Proj                     Tensor // [width, proj]
}

// LNEps is the LayerNorm epsilon of the CLIP towers.
const LNEps = 1e-5

// Tokens is the number of tokens: patches plus the class token.
func (c ViTConfig) Tokens() int64 { return (c.Image/c.Patch)*(c.Image/c.Patch) + 1 }

// NewViT draws random weights.
func NewViT(c ViTConfig) *ViT {
	g := newRNG(c.Seed)
	v := &ViT{Cfg: c,
		PatchW: g.normal(1/math.Sqrt(float64(3*c.Patch*c.Patch)), 0, c.Width, 3, c.Patch, c.Patch),
		Class:  g.normal(0.5, 0, c.Width),
		Pos:    g.normal(0.5, 0, c.Tokens(), c.Width),
		PreG:   g.normal(0.1, 1, c.Width), PreB: g.normal(0.1, 0, c.Width),
		PostG: g.normal(0.1, 1, c.Width), PostB: g.normal(0.1, 0, c.Width),
		Proj: g.normal(1/math.Sqrt(float64(c.Width)), 0, c.Width, c.Proj),
	}
	for range c.Layers {
		v.Blocks = append(v.Blocks, newBlock(g, c.Width, c.MLP))
	}
	return v
}

// build adds the tower on pixel values px; it returns the projected
// embeddings and the last hidden state.
func (v *ViT) build(b builder, px string) (embeds, hidden string) {
	c := v.Cfg
	patches := b.Node("Conv", []string{px, b.w(v.PatchW, "patch_w")},
		AttrInts("kernel_shape", c.Patch, c.Patch), AttrInts("strides", c.Patch, c.Patch))
	patches = b.Node("Transpose", []string{b.Op("Reshape", patches, b.Ints(0, c.Width, -1))}, AttrInts("perm", 0, 2, 1))
	cls := b.Float32s("class", []int64{1, 1, c.Width}, v.Class.Data)
	shape := b.Node("Concat", []string{b.dimOf(px, 0), b.Ints(1, c.Width)}, AttrInt("axis", 0))
	x := b.Node("Concat", []string{b.Op("Expand", cls, shape), patches}, AttrInt("axis", 1))
	x = b.Op("Add", x, b.w(v.Pos, "pos"))
	x = b.layerNorm(x, v.PreG, v.PreB, LNEps)
	for i := range v.Blocks {
		x = b.preLNBlock(x, &v.Blocks[i], c.Heads, c.Width, "", LNEps)
	}
	first := b.Int64s("zero", nil, 0)
	pooled := b.layerNorm(b.Node("Gather", []string{x, first}, AttrInt("axis", 1)), v.PostG, v.PostB, LNEps)
	return b.linear(pooled, v.Proj, Tensor{}), x
}

// Model is the vision tower as Hugging Face's separate vision export has
// it: pixel_values [batch, 3, image, image] → image_embeds [batch, proj]
// and last_hidden_state [batch, tokens, width].
func (v *ViT) Model() []byte {
	g := NewGraph("clip_vision")
	b := builder{g}
	c := v.Cfg
	px := g.Input("pixel_values", Float, "batch_size", 3, c.Image, c.Image)
	emb, hidden := v.build(b, px)
	g.Output("image_embeds", emb, Float, "batch_size", c.Proj)
	g.Output("last_hidden_state", hidden, Float, "batch_size", c.Tokens(), c.Width)
	return g.Model()
}

// BERTConfig is the shape of a BERT encoder.
type BERTConfig struct {
	Vocab, MaxPos, TypeVocab, Width, Layers, Heads, FFN int64
	Seed                                                uint64
}

// MiniLML6 returns the shape of all-MiniLM-L6-v2.
func MiniLML6() BERTConfig {
	return BERTConfig{Vocab: 30522, MaxPos: 512, TypeVocab: 2, Width: 384, Layers: 6, Heads: 12, FFN: 1536}
}

// BERTEps is BERT's LayerNorm epsilon.
const BERTEps = 1e-12

// MaskValue is the additive attention mask of padded positions.
const MaskValue = -10000

// BERT is a random-weight BERT encoder: word + position + token-type
// embeddings, LayerNorm, post-LN blocks with the padding mask.
type BERT struct {
	Cfg              BERTConfig
	Word, Pos, Type  Tensor
	EmbG, EmbB       Tensor
	Blocks           []Block
	WithTokenTypeIDs bool // the model takes token_type_ids (XLM-R's export does not)
	// Batch and Seq are the batch and sequence axes of the inputs: a
	// name for a dynamic axis (the default "batch_size",
	// "sequence_length"), or a size for a static export.
	Batch, Seq Dim
}

// NewBERT draws random weights.
func NewBERT(c BERTConfig) *BERT {
	g := newRNG(c.Seed)
	m := &BERT{Cfg: c, WithTokenTypeIDs: true,
		Word: g.normal(0.5, 0, c.Vocab, c.Width), Pos: g.normal(0.5, 0, c.MaxPos, c.Width),
		Type: g.normal(0.5, 0, c.TypeVocab, c.Width),
		EmbG: g.normal(0.1, 1, c.Width), EmbB: g.normal(0.1, 0, c.Width),
	}
	for range c.Layers {
		m.Blocks = append(m.Blocks, newBlock(g, c.Width, c.FFN))
	}
	return m
}

// paddingMask turns an int64 attention mask [B, S] into an additive
// [B, 1, 1, S] float mask.
func (b builder) paddingMask(mask string) string {
	m := b.Node("Cast", []string{mask}, AttrInt("to", Float))
	m = b.Op("Mul", b.Op("Sub", b.Scalar(1), m), b.Scalar(MaskValue))
	return b.Op("Unsqueeze", m, b.Ints(1, 2))
}

// positions slices the first S rows of a position table, S = ids' axis 1.
func (b builder) positions(table Tensor, ids string) string {
	return b.Op("Slice", b.w(table, "pos"), b.Ints(0), b.dimOf(ids, 1), b.Ints(0))
}

// Model is the export of a BERT / Sentence-BERT model: input_ids,
// attention_mask, token_type_ids [batch, sequence] int64 →
// last_hidden_state [batch, sequence, width].
func (m *BERT) Model() []byte {
	g := NewGraph("bert")
	b := builder{g}
	c := m.Cfg
	batch, seq := Dim("batch_size"), Dim("sequence_length")
	if m.Batch != nil {
		batch = m.Batch
	}
	if m.Seq != nil {
		seq = m.Seq
	}
	ids := g.Input("input_ids", Int64, batch, seq)
	mask := g.Input("attention_mask", Int64, batch, seq)
	x := b.Op("Add", b.Op("Gather", b.w(m.Word, "word"), ids), b.positions(m.Pos, ids))
	if m.WithTokenTypeIDs {
		tt := g.Input("token_type_ids", Int64, batch, seq)
		x = b.Op("Add", x, b.Op("Gather", b.w(m.Type, "type"), tt))
	}
	x = b.layerNorm(x, m.EmbG, m.EmbB, BERTEps)
	am := b.paddingMask(mask)
	for i := range m.Blocks {
		x = b.postLNBlock(x, &m.Blocks[i], c.Heads, c.Width, am, BERTEps)
	}
	g.Output("last_hidden_state", x, Float, batch, seq, c.Width)
	return g.Model()
}

// CLIPTextConfig is the shape of a CLIP text tower.
type CLIPTextConfig struct {
	Vocab, Context, Width, Layers, Heads, MLP, Proj int64
	Seed                                            uint64
}

// CLIPText is a random-weight CLIP text tower: token + position
// embeddings, pre-LN blocks with a causal and a padding mask, final
// LayerNorm (last_hidden_state), and text_embeds = the state at the
// end-of-text token (the largest id, found with ArgMax as Hugging Face
// does) @ projection.
type CLIPText struct {
	Cfg          CLIPTextConfig
	Tok, Pos     Tensor
	Blocks       []Block
	FinalG, FinB Tensor
	Proj         Tensor
}

// NewCLIPText draws random weights.
func NewCLIPText(c CLIPTextConfig) *CLIPText {
	g := newRNG(c.Seed)
	m := &CLIPText{Cfg: c, Tok: g.normal(0.5, 0, c.Vocab, c.Width), Pos: g.normal(0.5, 0, c.Context, c.Width),
		FinalG: g.normal(0.1, 1, c.Width), FinB: g.normal(0.1, 0, c.Width),
		Proj: g.normal(1/math.Sqrt(float64(c.Width)), 0, c.Width, c.Proj)}
	for range c.Layers {
		m.Blocks = append(m.Blocks, newBlock(g, c.Width, c.MLP))
	}
	return m
}

func (m *CLIPText) build(b builder, ids, mask string) (embeds, hidden string) {
	c := m.Cfg
	x := b.Op("Add", b.Op("Gather", b.w(m.Tok, "tok"), ids), b.positions(m.Pos, ids))
	causal := make([]float32, c.Context*c.Context)
	for i := range c.Context {
		for j := i + 1; j < c.Context; j++ {
			causal[i*c.Context+j] = MaskValue
		}
	}
	s := b.dimOf(ids, 1)
	ss := b.Node("Concat", []string{s, s}, AttrInt("axis", 0))
	cm := b.Op("Slice", b.Float32s("causal", []int64{c.Context, c.Context}, causal), b.Ints(0, 0), ss, b.Ints(0, 1))
	am := b.Op("Add", b.paddingMask(mask), cm)
	for i := range m.Blocks {
		x = b.preLNBlock(x, &m.Blocks[i], c.Heads, c.Width, am, LNEps)
	}
	x = b.layerNorm(x, m.FinalG, m.FinB, LNEps)
	eos := b.Node("ArgMax", []string{ids}, AttrInt("axis", 1), AttrInt("keepdims", 0))
	batch := b.Op("Squeeze", b.dimOf(ids, 0), b.Ints(0))
	seq := b.Op("Squeeze", s, b.Ints(0))
	rows := b.Op("Range", b.Int64s("zero", nil, 0), batch, b.Int64s("one", nil, 1))
	flat := b.Op("Reshape", x, b.Ints(-1, c.Width))
	pooled := b.Op("Gather", flat, b.Op("Add", b.Op("Mul", rows, seq), eos))
	return b.linear(pooled, m.Proj, Tensor{}), x
}

// Model is the text tower as a separate export: input_ids,
// attention_mask [batch, sequence] → text_embeds [batch, proj] and
// last_hidden_state [batch, sequence, width].
func (m *CLIPText) Model() []byte {
	g := NewGraph("clip_text")
	b := builder{g}
	ids := g.Input("input_ids", Int64, "batch_size", "sequence_length")
	mask := g.Input("attention_mask", Int64, "batch_size", "sequence_length")
	emb, hidden := m.build(b, ids, mask)
	g.Output("text_embeds", emb, Float, "batch_size", m.Cfg.Proj)
	g.Output("last_hidden_state", hidden, Float, "batch_size", "sequence_length", m.Cfg.Width)
	return g.Model()
}

// CombinedCLIP is one model with both towers, as Hugging Face optimum
// exports CLIPModel: input_ids, pixel_values, attention_mask →
// logits_per_image, logits_per_text, text_embeds, image_embeds (both
// L2-normalised, as CLIPModel returns them). All axes of the inputs are
// symbolic, as in optimum's export.
func CombinedCLIP(v *ViT, t *CLIPText, logitScale float32) []byte {
	g := NewGraph("clip")
	b := builder{g}
	ids := g.Input("input_ids", Int64, "text_batch_size", "sequence_length")
	px := g.Input("pixel_values", Float, "image_batch_size", "num_channels", "height", "width")
	mask := g.Input("attention_mask", Int64, "text_batch_size", "sequence_length")
	img, _ := v.build(b, px)
	txt, _ := t.build(b, ids, mask)
	img, txt = b.l2norm(img), b.l2norm(txt)
	perImage := b.Op("Mul", b.Op("MatMul", img, b.Node("Transpose", []string{txt}, AttrInts("perm", 1, 0))), b.Scalar(logitScale))
	perText := b.Node("Transpose", []string{perImage}, AttrInts("perm", 1, 0))
	g.Output("logits_per_image", perImage, Float, "image_batch_size", "text_batch_size")
	g.Output("logits_per_text", perText, Float, "text_batch_size", "image_batch_size")
	g.Output("text_embeds", txt, Float, "text_batch_size", t.Cfg.Proj)
	g.Output("image_embeds", img, Float, "image_batch_size", v.Cfg.Proj)
	return g.Model()
}
