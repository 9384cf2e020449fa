package mmssl

import "fmt"

// Modes of the model (model.mode).
const (
	// Faithful reproduces the reference code's executed computation,
	// quirks included.
	Faithful = "faithful"
	// Intended is the method as the paper describes it.
	Intended = "intended"
)

// Graph normalisations (model.graph_norm).
const (
	// GraphNormHalf scales rows only: D_u^-1/2·R and D_i^-1/2·Rᵀ (the
	// reference's csr_norm with mean_flag).
	GraphNormHalf = "half"
	// GraphNormSym is LightGCN's D_u^-1/2·R·D_i^-1/2 and its transpose.
	GraphNormSym = "sym"
)

// CF propagation orders (model.cf_prop).
const (
	// PropSequential is the reference's order (quirk Q4): layer l computes
	// u_l = G_ui·i_(l-1) and then i_l = G_iu·u_l from the user layer just
	// computed, so the user ID embeddings never reach the item side.
	PropSequential = "sequential"
	// PropParallel is LightGCN's order: u_l = G_ui·i_(l-1) and
	// i_l = G_iu·u_(l-1), both from the previous layer.
	PropParallel = "parallel"
)

// Config is MMSSL's configuration (model.* keys). Defaults are the
// reference's parser defaults (research/models.md §2.9).
type Config struct {
	// Mode is faithful (the reference's executed computation) or intended
	// (the paper's method).
	Mode string `yaml:"mode" json:"mode"`
	// Modalities names the feature files to use, each a modality ("image")
	// or a file stem ("image.imported"); empty: every modality of the
	// dataset, in name order.
	Modalities []string `yaml:"modalities" json:"modalities"`
	// EmbedSize is the embedding size d (embed_size 64).
	EmbedSize int `yaml:"embed_size" json:"embed_size"`
	// CFLayers is the number of user–item propagation layers
	// (len(weight_size) = 2); the last applies a softmax over the feature
	// axis unless CFSoftmax is false.
	CFLayers int `yaml:"cf_layers" json:"cf_layers"`
	// BatchSize is the number of distinct users per batch (batch_size
	// 1024); an epoch has ⌊train interactions / BatchSize⌋ + 1 batches.
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// LR is AdamW's learning rate for the recommender (lr 5.5e-4).
	LR float64 `yaml:"lr" json:"lr"`
	// WeightDecay is AdamW's decoupled weight decay (PyTorch's default
	// 0.01, which the reference does not override).
	WeightDecay float64 `yaml:"weight_decay" json:"weight_decay"`
	// DLR, DBeta1 and DBeta2 are the critic's Adam settings (D_lr 3e-4,
	// betas 0.5 and 0.9).
	DLR    float64 `yaml:"d_lr" json:"d_lr"`
	DBeta1 float64 `yaml:"d_beta1" json:"d_beta1"`
	DBeta2 float64 `yaml:"d_beta2" json:"d_beta2"`
	// Reg weighs the L2 term on the batch's final embeddings (regs[0]
	// 1e-5).
	Reg float64 `yaml:"reg" json:"reg"`
	// FeatRegDecay weighs the L2 term on the modality embeddings
	// (feat_reg_decay 1e-5).
	FeatRegDecay float64 `yaml:"feat_reg_decay" json:"feat_reg_decay"`
	// CLRate weighs the contrastive (InfoNCE) term (cl_rate 0.03) and Tau is
	// its temperature (tau 0.5). cl_rate 0 is the ablation without the
	// contrastive part: the InfoNCE is then not computed at all and the
	// loss cl is not reported.
	CLRate float64 `yaml:"cl_rate" json:"cl_rate"`
	Tau    float64 `yaml:"tau" json:"tau"`
	// GRate weighs the generator's adversarial term (G_rate 1e-4).
	GRate float64 `yaml:"g_rate" json:"g_rate"`
	// GPRate weighs the gradient penalty in the critic's loss (gp_rate 1)
	// and GPLambda is the penalty's own factor (LAMBDA 0.3 in the code).
	GPRate   float64 `yaml:"gp_rate" json:"gp_rate"`
	GPLambda float64 `yaml:"gp_lambda" json:"gp_lambda"`
	// GDrop1 and GDrop2 are the critic's dropout rates (G_drop1 0.31,
	// G_drop2 0.5).
	GDrop1 float64 `yaml:"g_drop1" json:"g_drop1"`
	GDrop2 float64 `yaml:"g_drop2" json:"g_drop2"`
	// CriticSlope is the negative slope of the critic's LeakyReLU: 1 (the
	// identity) in the reference, which passes True positionally.
	CriticSlope float64 `yaml:"critic_slope" json:"critic_slope"`
	// RealDataTau is the Gumbel-softmax temperature of the real samples
	// (real_data_tau 0.005) and LogLogScale the Gumbel noise's scale
	// (log_log_scale 1e-5).
	RealDataTau float64 `yaml:"real_data_tau" json:"real_data_tau"`
	LogLogScale float64 `yaml:"log_log_scale" json:"log_log_scale"`
	// UIPreScale weighs the normalised CF scores added to the real samples
	// (ui_pre_scale 100).
	UIPreScale float64 `yaml:"ui_pre_scale" json:"ui_pre_scale"`
	// MTopKRate sets the generated graphs' k = int(items · m_topk_rate)
	// (1e-4: k = 0 on TikTok) and T their rebuild period in batches (T 1).
	MTopKRate float64 `yaml:"m_topk_rate" json:"m_topk_rate"`
	T         int     `yaml:"t" json:"t"`
	// DropRate is the dropout on the projected features (drop_rate 0.2).
	DropRate float64 `yaml:"drop_rate" json:"drop_rate"`
	// ModelCatRate weighs the normalised modality embeddings in the final
	// vectors (model_cat_rate 0.55); IDCatRate the fused modality ID
	// embeddings added to the ID embeddings (id_cat_rate 0.36).
	ModelCatRate float64 `yaml:"model_cat_rate" json:"model_cat_rate"`
	IDCatRate    float64 `yaml:"id_cat_rate" json:"id_cat_rate"`
	// HeadNum is the number of attention heads (head_num 4).
	HeadNum int `yaml:"head_num" json:"head_num"`
	// TopK is the number of items per user of the generated graphs in
	// intended mode (faithful mode uses int(items · m_topk_rate)).
	TopK int `yaml:"topk" json:"topk"`
	// GraphKeepTrain (intended mode only, default off) anchors the
	// generated graphs to the interactions: a rebuilt user row holds the
	// user's training items plus the top-k predictions (which exclude
	// them), instead of the predictions alone. The paper's graphs replace
	// the user's history by its own top-k predictions, which feeds the
	// model's predictions back into its input.
	GraphKeepTrain bool `yaml:"graph_keep_train" json:"graph_keep_train"`
	// FeatStandardize (default off, either mode) standardises every
	// feature column to mean 0 and variance 1 over the items before
	// training (a constant column becomes 0). The reference feeds the raw
	// features; TikTok's image features share a large common offset (mean
	// 2.7 per column, row norm 33), which the projection then spends its
	// capacity on.
	FeatStandardize bool `yaml:"feat_standardize" json:"feat_standardize"`
	// IntendedCriticSlope is the critic's LeakyReLU slope in intended mode.
	IntendedCriticSlope float64 `yaml:"intended_critic_slope" json:"intended_critic_slope"`
	// CFSoftmax applies the reference's softmax over the feature axis to
	// the last user–item layer (quirk Q4; default true in both modes).
	// false gives LightGCN's plain layer mean.
	CFSoftmax bool `yaml:"cf_softmax" json:"cf_softmax"`
	// GraphNorm is the normalisation of every user–item graph (the
	// interaction graph and the generated ones): "half", the reference's
	// D_u^-1/2·R and D_i^-1/2·Rᵀ (quirk Q4; default), or "sym", LightGCN's
	// D_u^-1/2·R·D_i^-1/2 and its transpose.
	GraphNorm string `yaml:"graph_norm" json:"graph_norm"`
	// CFProp is the order of the user–item propagation: "sequential", the
	// reference's (quirk Q4; default), or "parallel", LightGCN's.
	CFProp string `yaml:"cf_prop" json:"cf_prop"`
	// EmbedInitStd draws the user and item ID embeddings from N(0, std²)
	// when positive (LightGCN's 0.1); 0 (default) keeps the reference's
	// Xavier-uniform init, ±√(6/(d + rows)), which starts them about 7×
	// smaller on TikTok.
	EmbedInitStd float64 `yaml:"embed_init_std" json:"embed_init_std"`

	// NoAdversarial is the ablation without the adversarial structure
	// learning (default off): the critic is neither built nor run (its
	// items² memory, its step and its pass in the generator's step vanish)
	// and the recommender's loss has no adversarial term. The losses d_loss,
	// d_real, d_fake, gp and g_adv are not reported and checkpoints hold no
	// critic state.
	NoAdversarial bool `yaml:"no_adversarial" json:"no_adversarial"`
	// NoModality is the ablation without the modality branch in the
	// representations (default off): U* = mean(E_u, u1, …) and I* =
	// mean(E_i, i1, …), i.e. neither the model_cat_rate terms norm(U_m),
	// norm(I_m) nor the fused modality ID embeddings (id_cat_rate) enter
	// the final vectors, so the features do not influence the scores. The
	// modality branch is still computed for the self-supervised tasks that
	// read it (the critic's fake samples, the generated graphs, the InfoNCE
	// views Ũ_m); combine with no_adversarial and cl_rate 0 for the bare CF
	// backbone.
	NoModality bool `yaml:"no_modality" json:"no_modality"`
}

// DefaultConfig returns the reference's defaults.
func DefaultConfig() *Config {
	return &Config{
		Mode: Faithful, EmbedSize: 64, CFLayers: 2, BatchSize: 1024,
		LR: 5.5e-4, WeightDecay: 0.01, DLR: 3e-4, DBeta1: 0.5, DBeta2: 0.9,
		Reg: 1e-5, FeatRegDecay: 1e-5, CLRate: 0.03, Tau: 0.5, GRate: 1e-4,
		GPRate: 1, GPLambda: 0.3, GDrop1: 0.31, GDrop2: 0.5, CriticSlope: 1,
		RealDataTau: 0.005, LogLogScale: 1e-5, UIPreScale: 100, MTopKRate: 1e-4, T: 1,
		DropRate: 0.2, ModelCatRate: 0.55, IDCatRate: 0.36, HeadNum: 4,
		TopK: 10, IntendedCriticSlope: 0.2, CFSoftmax: true, GraphNorm: GraphNormHalf, CFProp: PropSequential,
	}
}

// Validate checks the keys.
func (c *Config) Validate() error {
	nonneg := func(name string, v float64) error {
		if !(v >= 0) {
			return fmt.Errorf("%s: must be ≥ 0, got %v", name, v)
		}
		return nil
	}
	prob := func(name string, v float64) error {
		if !(v >= 0 && v < 1) {
			return fmt.Errorf("%s: must be in [0, 1), got %v", name, v)
		}
		return nil
	}
	switch {
	case c.Mode != Faithful && c.Mode != Intended:
		return fmt.Errorf("mode: must be %s or %s, got %q", Faithful, Intended, c.Mode)
	case c.GraphNorm != GraphNormHalf && c.GraphNorm != GraphNormSym:
		return fmt.Errorf("graph_norm: must be %s or %s, got %q", GraphNormHalf, GraphNormSym, c.GraphNorm)
	case c.CFProp != PropSequential && c.CFProp != PropParallel:
		return fmt.Errorf("cf_prop: must be %s or %s, got %q", PropSequential, PropParallel, c.CFProp)
	case c.EmbedSize < 1:
		return fmt.Errorf("embed_size: must be ≥ 1, got %d", c.EmbedSize)
	case c.CFLayers < 1:
		return fmt.Errorf("cf_layers: must be ≥ 1, got %d", c.CFLayers)
	case c.BatchSize < 2:
		return fmt.Errorf("batch_size: must be ≥ 2, got %d", c.BatchSize)
	case !(c.LR > 0):
		return fmt.Errorf("lr: must be positive, got %v", c.LR)
	case !(c.DLR > 0):
		return fmt.Errorf("d_lr: must be positive, got %v", c.DLR)
	case !(c.Tau > 0):
		return fmt.Errorf("tau: must be positive, got %v", c.Tau)
	case !(c.RealDataTau > 0):
		return fmt.Errorf("real_data_tau: must be positive, got %v", c.RealDataTau)
	case c.T < 1:
		return fmt.Errorf("t: must be ≥ 1, got %d", c.T)
	case c.HeadNum < 1:
		return fmt.Errorf("head_num: must be ≥ 1, got %d", c.HeadNum)
	case c.TopK < 1:
		return fmt.Errorf("topk: must be ≥ 1, got %d", c.TopK)
	case c.Mode == Intended && c.EmbedSize%c.HeadNum != 0:
		return fmt.Errorf("head_num: %d heads do not divide embed_size %d (intended mode splits the embedding into heads)", c.HeadNum, c.EmbedSize)
	case c.GraphKeepTrain && c.Mode != Intended:
		return fmt.Errorf("graph_keep_train: applies to mode=%s only (faithful mode's graphs are the reference's)", Intended)
	case !(c.MTopKRate >= 0 && c.MTopKRate <= 1):
		return fmt.Errorf("m_topk_rate: must be in [0, 1], got %v", c.MTopKRate)
	}
	for _, p := range []struct {
		n string
		v float64
	}{{"d_beta1", c.DBeta1}, {"d_beta2", c.DBeta2}, {"g_drop1", c.GDrop1}, {"g_drop2", c.GDrop2}, {"drop_rate", c.DropRate}} {
		if err := prob(p.n, p.v); err != nil {
			return err
		}
	}
	for _, p := range []struct {
		n string
		v float64
	}{{"weight_decay", c.WeightDecay}, {"reg", c.Reg}, {"feat_reg_decay", c.FeatRegDecay}, {"cl_rate", c.CLRate},
		{"g_rate", c.GRate}, {"gp_rate", c.GPRate}, {"gp_lambda", c.GPLambda}, {"critic_slope", c.CriticSlope},
		{"intended_critic_slope", c.IntendedCriticSlope}, {"embed_init_std", c.EmbedInitStd}, {"log_log_scale", c.LogLogScale}, {"ui_pre_scale", c.UIPreScale}, {"model_cat_rate", c.ModelCatRate}, {"id_cat_rate", c.IDCatRate}} {
		if err := nonneg(p.n, p.v); err != nil {
			return err
		}
	}
	for k, m := range c.Modalities {
		if m == "" {
			return fmt.Errorf("modalities: entry %d is empty", k)
		}
	}
	return nil
}
