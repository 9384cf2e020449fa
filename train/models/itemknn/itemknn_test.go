package itemknn

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mmpipe/mmpipe/pipeline/dataset"
	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/eval"
)

// tinyDataset: 4 items with 2-d features whose cosines are worked out by
// hand; user 0 trains on items 0 and 2.
func tinyDataset(t *testing.T, feat []float32) *train.Data {
	t.Helper()
	src := t.TempDir()
	inter := "userID\titemID\tx_label\n0\t0\t0\n0\t2\t0\n0\t1\t2\n1\t1\t0\n1\t3\t0\n1\t0\t2\n"
	if err := os.WriteFile(filepath.Join(src, "t.inter"), []byte(inter), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := store.WriteNPY(filepath.Join(src, "v_feat.npy"), []int{4, 2}, feat); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "ds")
	if _, err := dataset.Ingest(context.Background(), dataset.Options{Format: "mmrec", Inputs: []string{src}, Out: out, MinRating: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	d, err := train.LoadData(context.Background(), out, "given", eval.Graph)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func scoresOf(t *testing.T, d *train.Data, k int, user int32) []float32 {
	t.Helper()
	cfg := train.DefaultConfig(&Config{Features: "v", K: k})
	m, err := New(&train.Env{Data: d, Config: cfg, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	score, err := m.Scorer(context.Background(), store.PartTest)
	if err != nil {
		t.Fatal(err)
	}
	s := make([]float32, d.NumItems)
	if err := score([]int32{user}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNeighbourScores(t *testing.T) {
	// cos(0,1) = 0.8, cos(0,2) = 0, cos(0,3) = -1, cos(1,2) = 0.6, cos(1,3) = -0.8, cos(2,3) = 0.
	// Vectors are not unit length: the model normalises them.
	feat := []float32{2, 0, 0.8, 0.6, 0, 3, -1, 0}
	d := tinyDataset(t, feat)
	cases := []struct {
		k    int
		user int32
		want []float32
	}{
		// K=1: nbr(0)=1 (0.8), nbr(2)=1 (0.6) → item 1 gets 1.4.
		{1, 0, []float32{0, 1.4, 0, 0}},
		// K=2: nbr(0)={1: 0.8, 2: 0}, nbr(2)={1: 0.6, 0: 0}.
		{2, 0, []float32{0, 1.4, 0, 0}},
		// K=3 adds item 3 for both: -1 + 0.
		{3, 0, []float32{0, 1.4, 0, -1}},
		// User 1 trains on items 1 and 3; K=1: nbr(1)=0 (0.8), nbr(3)=2 (0, the lower index among the ties at 0).
		{1, 1, []float32{0.8, 0, 0, 0}},
	}
	for _, c := range cases {
		got := scoresOf(t, d, c.k, c.user)
		for i := range got {
			if math.Abs(float64(got[i]-c.want[i])) > 1e-6 {
				t.Errorf("K=%d user %d: scores %v, want %v", c.k, c.user, got, c.want)
				break
			}
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{{Features: "", K: 5}, {Features: "image", K: 0}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := New(&train.Env{Data: tinyDataset(t, make([]float32, 8)), Config: train.DefaultConfig(&Config{Features: "text", K: 3})}); err == nil {
		t.Error("a missing modality was accepted")
	}
}
