package missrec_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/internal/cycledata"
	"github.com/mmpipe/mmpipe/train/internal/resumetest"
	"github.com/mmpipe/mmpipe/train/models/missrec"
	"github.com/mmpipe/mmpipe/train/models/pop"
)

// cycleDataset writes a RecBole-format dataset (the layout of the
// reference's downstream data: prefix rows, leave-one-out valid/test, text
// and image .feat*CLS files) whose users walk a cycle of items: user u
// starts at a random item and then visits item+1, item+2, ... (mod items).
// The next item is a function of the last one, so a sequence model can
// reach hit@10 ≈ 1 where popularity stays near 10/items. Features are
// random 8-d vectors per item (item 3 has no image: a zero row), text,
// word-dropped text (.feat2CLS) and image.
func cycleDataset(t *testing.T, users, items int) string {
	t.Helper()
	return cycledata.RecBole(t, rand.New(rand.NewPCG(11, 12)), users, items, cycledata.Options{FeatDim: 8, WordDrop: true, NoImageItem: 3})
}

var small = []string{"model.dim=32", "model.heads=2", "model.inner=32", "model.batch_size=64", "model.lr=0.005",
	"model.dropout=0.1", "model.max_len=12", "model.len_bucket=4", "model.eval_batch=128", "eval_batch=128"}

func TestMISSRecLearnsTheNextItem(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	ds := cycleDataset(t, 300, 40)
	root := t.TempDir()
	p, err := train.Run(context.Background(), pop.Factory(), train.Options{Dataset: ds, Out: filepath.Join(root, "pop"), Version: "test",
		Sets: []string{"protocol=seq-loo"}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := train.Run(context.Background(), missrec.Factory(), train.Options{Dataset: ds, Out: filepath.Join(root, "missrec"), Version: "test",
		Sets: append(small, "epochs=12", "patience=0")})
	if err != nil {
		t.Fatal(err)
	}
	h, ph := rep.Test["hit@10"], p.Test["hit@10"]
	t.Logf("missrec test hit@10 %.3f ndcg@10 %.3f (popularity %.3f), best epoch %d, %.2f s/epoch", h, rep.Test["ndcg@10"], ph, rep.BestEpoch, rep.EpochSeconds)
	if rep.Protocol != "seq-loo" {
		t.Errorf("protocol %q, want seq-loo", rep.Protocol)
	}
	if h < 0.6 || h < 3*ph {
		t.Errorf("missrec test hit@10 %.3f: want ≥ 0.6 and ≥ 3× popularity (%.3f)", h, ph)
	}
}

func TestMISSRecResumeIsExact(t *testing.T) {
	ds := cycleDataset(t, 120, 30)
	other := cycleDataset(t, 60, 20)
	var preCkpt string  // the pretrain subtest's final checkpoint
	base := t.TempDir() // outlives the subtests
	for _, tc := range []struct{ name, set string }{
		{missrec.ModeTransductive, "model.mode=" + missrec.ModeTransductive},
		{missrec.ModeInductive, "model.mode=" + missrec.ModeInductive},
		{"pretrain", "model.stage=pretrain"},
		// Fine-tuning from the pre-training run's checkpoint, frozen Transformer.
		{"transfer", "model.mode=" + missrec.ModeTransductive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(base, tc.name)
			sets := append(append([]string{}, small...), "epochs=3", "patience=0", tc.set)
			if tc.name == "pretrain" {
				// One history length bucket: fewer graph shapes to compile.
				sets = append(sets, "model.pretrain_datasets="+other, "model.text_aug_features=text_worddrop", "model.interest_ratio=0.2", "model.len_bucket=12",
					"epochs=2") // cut in epoch 2 still
			}
			var init string
			if tc.name == "transfer" {
				if preCkpt == "" {
					t.Skip("needs the pretrain subtest's checkpoint")
				}
				init = preCkpt
			}
			want, err := train.Run(context.Background(), missrec.Factory(), train.Options{Dataset: ds, Out: filepath.Join(root, "full"), Version: "test", Sets: sets, Init: init})
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "pretrain" {
				preCkpt = filepath.Join(root, "full", "checkpoints", "last.ckpt")
			}
			out := filepath.Join(root, "cut")
			got := resumetest.InterruptResume(t, missrec.Factory(), train.Options{Dataset: ds, Out: out, Version: "test", Sets: sets, Init: init}, want.Test)
			for k, v := range want.Valid {
				if got.Valid[k] != v {
					t.Errorf("valid %s: resumed %v, uninterrupted %v", k, got.Valid[k], v)
				}
			}
			a, err := os.ReadFile(filepath.Join(root, "full", "metrics.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if la, lb := lossesOf(string(a)), lossesOf(string(b)); la != lb {
				t.Errorf("losses differ:\n%s\n%s", la, lb)
			}
		})
	}
}

// lossesOf extracts the "loss" values of metrics.jsonl lines.
func lossesOf(s string) string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if i := strings.Index(line, `"loss":`); i >= 0 {
			j := strings.IndexAny(line[i+7:], ",}")
			out = append(out, line[i+7:i+7+j])
		}
	}
	return strings.Join(out, " ")
}

// TestMISSRecPretrainThenFinetune pre-trains on two domains (the dataset
// and another), then fine-tunes on the dataset from the pre-training
// checkpoint (--init): the frozen tensors (position embeddings, the whole
// Transformer) must equal the checkpoint's after training, the trainable
// ones must have moved, and item-ID embeddings must be new.
func TestMISSRecPretrainThenFinetune(t *testing.T) {
	ds, other := cycleDataset(t, 120, 30), cycleDataset(t, 80, 25)
	root := t.TempDir()
	pre := filepath.Join(root, "pre")
	rep, err := train.Run(context.Background(), missrec.Factory(), train.Options{Dataset: ds, Out: pre, Version: "test",
		Sets: append(append([]string{}, small...), "epochs=2", "patience=0", "model.stage=pretrain",
			"model.pretrain_datasets=["+other+"]", "model.text_aug_features=text_worddrop", "model.interest_ratio=0.2", "model.len_bucket=12")})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Valid["ndcg@10"] <= 0 {
		t.Errorf("pre-training monitor: valid %v", rep.Valid)
	}
	metrics, err := os.ReadFile(filepath.Join(pre, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"seq_item"`, `"seq_seq"`, `"reg"`} {
		if !strings.Contains(string(metrics), key) {
			t.Errorf("pre-training metrics lack %s: %s", key, metrics)
		}
	}
	ckPath := filepath.Join(pre, "checkpoints", "last.ckpt")
	ck, err := train.ReadCheckpoint(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ck.Tensors["param.item_embedding"]; ok {
		t.Error("pre-training checkpoint has item-ID embeddings")
	}
	for _, mode := range []string{missrec.ModeTransductive, missrec.ModeInductive} {
		t.Run(mode, func(t *testing.T) {
			out := filepath.Join(root, "ft-"+mode)
			sets := append(append([]string{}, small...), "epochs=2", "patience=0", "model.mode="+mode)
			if mode == missrec.ModeInductive {
				sets = append(sets, "model.cluster=dpc-knn") // the DPC-KNN interest discovery in a real run
			}
			if _, err := train.Run(context.Background(), missrec.Factory(), train.Options{Dataset: ds, Out: out, Version: "test", Init: ckPath,
				Sets: sets}); err != nil {
				t.Fatal(err)
			}
			ft, err := train.ReadCheckpoint(filepath.Join(out, "checkpoints", "last.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			// Adam skips frozen parameters: their moments stay zero.
			adamM, off := ft.Tensors["adam.m"].F32, 0
			for _, ti := range ft.Header.Tensors {
				if !strings.HasPrefix(ti.Name, "param.") {
					continue
				}
				n := len(ft.Tensors[ti.Name].F32)
				zero := !slices.ContainsFunc(adamM[off:off+n], func(v float32) bool { return v != 0 })
				isFrozen := strings.HasPrefix(ti.Name, "param.encoder.") || strings.HasPrefix(ti.Name, "param.decoder.") || ti.Name == "param.position_embedding"
				if zero != isFrozen && ti.Name != "param.item_embedding" {
					t.Errorf("%s: Adam first moment all zero %v, frozen %v", ti.Name, zero, isFrozen)
				}
				off += n
			}
			frozen, moved := 0, 0
			for name, tt := range ft.Tensors {
				if !strings.HasPrefix(name, "param.") {
					continue
				}
				src, ok := ck.Tensors[name]
				same := ok && slices.Equal(src.F32, tt.F32)
				switch {
				case strings.HasPrefix(name, "param.encoder.") || strings.HasPrefix(name, "param.decoder.") || name == "param.position_embedding":
					frozen++
					if !same {
						t.Errorf("frozen %s changed", name)
					}
				case name == "param.item_embedding":
					if ok {
						t.Errorf("item embedding in the pre-training checkpoint")
					}
				default: // adaptors, decoder-input LayerNorm, fusion factor: copied, then trained
					moved++
					if !ok || same {
						t.Errorf("trainable %s: in checkpoint %v, unchanged %v", name, ok, same)
					}
				}
			}
			if frozen < 40 || moved != 7 {
				t.Errorf("%d frozen and %d trainable tensors, want ≥ 40 and 7", frozen, moved)
			}
			_, hasID := ft.Tensors["param.item_embedding"]
			if hasID != (mode == missrec.ModeTransductive) {
				t.Errorf("item embedding present %v in %s mode", hasID, mode)
			}
		})
	}
	// Pre-training takes no --init.
	if _, err := train.Run(context.Background(), missrec.Factory(), train.Options{Dataset: ds, Out: filepath.Join(root, "bad"), Version: "test",
		Init: ckPath, Sets: append(append([]string{}, small...), "model.stage=pretrain")}); err == nil {
		t.Error("stage=pretrain with --init: no error")
	}
}
