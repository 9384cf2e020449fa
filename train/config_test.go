package train

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/train/eval"
)

// testModelConfig exercises every supported field type.
type testModelConfig struct {
	Dim    int       `yaml:"dim" json:"dim"`
	LR     float64   `yaml:"lr" json:"lr"`
	Name   string    `yaml:"name" json:"name"`
	Tied   bool      `yaml:"tied" json:"tied"`
	Layers []int     `yaml:"layers" json:"layers"`
	Drops  []float64 `yaml:"drops" json:"drops"`
	Mods   []string  `yaml:"mods" json:"mods"`
	Inner  struct {
		Heads int `yaml:"heads" json:"heads"`
	} `yaml:"inner" json:"inner"`
}

func (c *testModelConfig) Validate() error {
	if c.Dim < 1 {
		return fmt.Errorf("dim: must be ≥ 1, got %d", c.Dim)
	}
	return nil
}

func testConfig() *Config {
	return DefaultConfig(&testModelConfig{Dim: 64, LR: 1e-3, Name: "x", Layers: []int{1}})
}

func TestSetOverrides(t *testing.T) {
	cases := []struct {
		set   string
		check func(c *Config) bool
	}{
		{"epochs=5", func(c *Config) bool { return c.Epochs == 5 }},
		{"seed=42", func(c *Config) bool { return c.Seed == 42 }},
		{"ndcg_ngcf=true", func(c *Config) bool { return c.NDCGNGCF }},
		{"ks=5,10", func(c *Config) bool { return slices.Equal(c.Ks, []int{5, 10}) }},
		{"ks=[1, 2, 3]", func(c *Config) bool { return slices.Equal(c.Ks, []int{1, 2, 3}) }},
		{"protocol=seq-loo", func(c *Config) bool { return c.Protocol == "seq-loo" }},
		{"model.dim=128", func(c *Config) bool { return c.Model.(*testModelConfig).Dim == 128 }},
		{"model.lr=1e-4", func(c *Config) bool { return c.Model.(*testModelConfig).LR == 1e-4 }},
		{"model.lr=3", func(c *Config) bool { return c.Model.(*testModelConfig).LR == 3 }},
		{"model.name=a=b c", func(c *Config) bool { return c.Model.(*testModelConfig).Name == "a=b c" }},
		{"model.name=", func(c *Config) bool { return c.Model.(*testModelConfig).Name == "" }},
		{"model.tied=false", func(c *Config) bool { return !c.Model.(*testModelConfig).Tied }},
		{"model.layers=", func(c *Config) bool { return len(c.Model.(*testModelConfig).Layers) == 0 }},
		{"model.drops=0.1,0.2", func(c *Config) bool { return slices.Equal(c.Model.(*testModelConfig).Drops, []float64{0.1, 0.2}) }},
		{"model.mods=image,text", func(c *Config) bool { return slices.Equal(c.Model.(*testModelConfig).Mods, []string{"image", "text"}) }},
		{"model.inner.heads=4", func(c *Config) bool { return c.Model.(*testModelConfig).Inner.Heads == 4 }},
	}
	for _, c := range cases {
		cfg := testConfig()
		if err := Set(cfg, c.set); err != nil {
			t.Errorf("%s: %v", c.set, err)
			continue
		}
		if !c.check(cfg) {
			t.Errorf("%s: not applied: %+v %+v", c.set, cfg, cfg.Model)
		}
	}
}

func TestSetErrorsNameTheKey(t *testing.T) {
	cases := []struct{ set, want string }{
		{"epochs", "want key=value"},
		{"=3", "want key=value"},
		{"epoch=3", "epoch: unknown key (keys of the top level: seed, epochs"},
		{"model.dimm=3", "model.dimm: unknown key (keys of model: dim, lr"},
		{"epochs=ten", "epochs: want an integer"},
		{"epochs=1.5", "epochs: want an integer"},
		{"seed=-1", "seed: want a non-negative integer"},
		{"model.lr=fast", "model.lr: want a number"},
		{"ndcg_ngcf=maybe", "ndcg_ngcf: want true or false"},
		{"ks=10,x", "ks: want a list of integers"},
		{"model=3", "model: is a section"},
		{"model.inner=3", "model.inner: is a section"},
		{"epochs.x=3", "epochs.x: epochs is a value, not a section"},
		{"epochs=", "epochs: empty value"},
	}
	for _, c := range cases {
		err := Set(testConfig(), c.set)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v is not a ConfigError", c.set, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to contain %q", c.set, err, c.want)
		}
	}
}

func TestLoadYAML(t *testing.T) {
	cfg := testConfig()
	doc := "epochs: 7\nks: [5, 50]\nmodel:\n  dim: 32\n  inner:\n    heads: 2\n  mods: [a, b]\n"
	if err := LoadYAML(cfg, "c.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	m := cfg.Model.(*testModelConfig)
	if cfg.Epochs != 7 || !slices.Equal(cfg.Ks, []int{5, 50}) || m.Dim != 32 || m.Inner.Heads != 2 || m.LR != 1e-3 ||
		!slices.Equal(m.Mods, []string{"a", "b"}) {
		t.Errorf("loaded %+v %+v", cfg, m)
	}
	bad := []struct{ doc, want string }{
		{"epochs: 1\nepohcs: 2\n", "c.yaml:2: epohcs: unknown key"},
		{"model:\n  dim: big\n", "c.yaml:2: model.dim: want an integer"},
		{"model: 3\n", "c.yaml:1: model: is a section"},
		{"epochs:\n", "c.yaml:1: epochs: no value"},
		{"epochs: 1\nepochs: 2\n", "epochs: given twice"},
		{"- 1\n- 2\n", "want a mapping"},
		{"epochs: [1\n", "config c.yaml:"},
	}
	for _, c := range bad {
		err := LoadYAML(testConfig(), "c.yaml", []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.doc, err, c.want)
		}
	}
	// The rendered YAML loads back to the same config.
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back := testConfig()
	if err := LoadYAML(back, "back", y); err != nil {
		t.Fatal(err)
	}
	y2, _ := back.YAML()
	if string(y) != string(y2) {
		t.Errorf("YAML round trip:\n%s\nvs\n%s", y, y2)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		set  []string
		want string
	}{
		{[]string{"epochs=-1"}, "epochs: must be ≥ 0"},
		{[]string{"eval_every=0"}, "eval_every: must be ≥ 1"},
		{[]string{"ks=0"}, "ks: cut-offs must be ≥ 1"},
		{[]string{"protocol=sequential"}, "protocol: unknown protocol"},
		{[]string{"select_metric=recall@30"}, "select_metric: recall@30 is not computed: add 30 to ks"},
		{[]string{"select_metric=auc@10"}, "select_metric: metric \"auc@10\""},
		{[]string{"select_metric=ndcg_ngcf@20"}, "needs ndcg_ngcf: true"},
		{[]string{"model.dim=0"}, "model.dim: must be ≥ 1"},
	}
	for _, c := range cases {
		cfg := testConfig()
		for _, s := range c.set {
			if err := Set(cfg, s); err != nil {
				t.Fatal(err)
			}
		}
		err := cfg.Resolve(eval.Graph)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.set, err, c.want)
		}
	}
	cfg := testConfig()
	if err := cfg.Resolve(eval.SeqLOO); err != nil || cfg.Protocol != "seq-loo" || cfg.SelectMetric != "ndcg@10" {
		t.Errorf("resolve defaults: %v %q %q", err, cfg.Protocol, cfg.SelectMetric)
	}
	if keys := Keys(cfg); !slices.Contains(keys, "model.inner.heads=0") || !slices.Contains(keys, "epochs=1000") {
		t.Errorf("Keys = %v", keys)
	}
}
