package mmssl

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
)

// sharedData returns a folder of the shared real data ($MMPIPE_DATA,
// default ../shared/data beside the repository), skipping where it is
// absent (failing with MMPIPE_REQUIRE_DATA=1) or under -short.
func sharedData(t *testing.T, sub string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("real-data run skipped in -short mode")
	}
	root := os.Getenv("MMPIPE_DATA")
	if root == "" {
		root = filepath.Join("..", "..", "..", "..", "shared", "data")
	}
	p := filepath.Join(root, sub)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MMPIPE_REQUIRE_DATA") == "1" {
			t.Fatalf("MMPIPE_REQUIRE_DATA=1 but %s is missing: %v", p, err)
		}
		t.Skipf("shared data %s not present (set MMPIPE_DATA): %v", p, err)
	}
	return p
}

// TestTikTokBatches runs a few faithful batches on the real TikTok data
// (image + audio): finite losses, the generated graphs' collapse (quirk Q1:
// k = int(6710·1e-4) = 0, so from the third batch on the contrastive term
// is the constant log(2B−1) per modality), and the time per batch split
// between the critic and the rest (MMSSL_BATCHES sets the count, default 4;
// MMSSL_MODE=intended runs the intended mode).
func TestTikTokBatches(t *testing.T) {
	src := sharedData(t, "tiktok")
	ds := filepath.Join(t.TempDir(), "tiktok")
	ctx := context.Background()
	if _, err := dataset.Ingest(ctx, dataset.Options{Format: "mmrec", Inputs: []string{src}, Out: ds, MinRating: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	data, err := train.LoadData(ctx, ds, "", eval.Graph)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if os.Getenv("MMSSL_MODE") != "" {
		cfg.Mode = os.Getenv("MMSSL_MODE")
	}
	env := &train.Env{Data: data, Config: train.DefaultConfig(cfg), InitRNG: train.NewRNG(2022, train.StreamInit), Workers: 2}
	mi, err := New(env)
	if err != nil {
		t.Fatal(err)
	}
	m := mi.(*Model)
	// model.feat_standardize reaches the loaded features: TikTok's image
	// columns (the first modality, raw column means up to 3.5) come out
	// centred with unit variance.
	scfg := *cfg
	scfg.FeatStandardize, scfg.NoAdversarial = true, true
	si, err := New(&train.Env{Data: data, Config: train.DefaultConfig(&scfg), InitRNG: train.NewRNG(2022, train.StreamInit), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for k, x := range []*Model{m, si.(*Model)} {
		f := x.feats[0]
		var mean, sq float64
		for r := range f.Rows {
			v := float64(f.Row(r)[0])
			mean += v
			sq += v * v
		}
		mean /= float64(f.Rows)
		sd := math.Sqrt(sq/float64(f.Rows) - mean*mean)
		if std := k == 1; std != (math.Abs(mean) < 1e-3 && math.Abs(sd-1) < 1e-3) {
			t.Errorf("feat_standardize %v: image column 0 has mean %.4f, sd %.4f", std, mean, sd)
		}
	}
	if m.nm != 2 || (m.k != 0 && !m.intended) || m.BatchesPerEpoch() != 59 {
		t.Fatalf("%d modalities (%v), k = %d, %d batches; want 2, 0, 59", m.nm, m.names, m.k, m.BatchesPerEpoch())
	}
	n := 4
	if s := os.Getenv("MMSSL_BATCHES"); s != "" {
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	rng := train.NewRNG(2022, train.StreamTrain)
	want := 2 * math.Log(2*float64(cfg.BatchSize)-1)
	for b := range n {
		t0, cpu0 := time.Now(), train.CPUTime()
		c0, m0 := m.tCritic, m.tModel
		l, err := m.TrainBatch(ctx, rng)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("batch %d: %.2f s, %.2f CPU s (critic %.2f s, rest %.2f s) loss %.4f bpr %.4f cl %.4f gp %.4g d_real %.3f d_fake %.3f",
			b, time.Since(t0).Seconds(), train.CPUTime()-cpu0, (m.tCritic - c0).Seconds(), (m.tModel - m0).Seconds(), l["loss"], l["bpr"], l["cl"], l["gp"], l["d_real"], l["d_fake"])
		for k, v := range l {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("batch %d: %s = %v", b, k, v)
			}
		}
		if b >= 2 && !m.intended && math.Abs(l["cl"]-want) > 1e-3 {
			t.Errorf("batch %d: contrastive term %v, want the collapsed constant 2·log(2B−1) = %v", b, l["cl"], want)
		}
	}
}
