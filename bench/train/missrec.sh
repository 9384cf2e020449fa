#!/usr/bin/env bash
# MISSRec benchmark on two real text domains (no images: amazon-office and
# amazon-scientific ship item texts only; text features from the built-in
# text-hash encoder, 384-d), protocol seq-loo (all items ranked, history not
# masked, selected on valid NDCG@10, test scored once):
#
#   1. Scientific from scratch: MISSRec inductive and transductive, beside SASRec;
#   2. pre-training on Office (stage=pretrain: in-batch sequence–item and
#      sequence–sequence contrast, item-drop / word-drop augmentation — no
#      word-dropped text file exists for these datasets, so word drop removes
#      the text of the dropped positions; Office's valid split is scored as a
#      monitor only), then fine-tuning on Scientific from its last checkpoint
#      (--init; position embeddings and the Transformer frozen, as the reference's
#      finetune.py does), inductive and transductive.
#
#   bash bench/train/missrec.sh                 # full budgets below (resumable)
#   SMOKE=1 bash bench/train/missrec.sh         # 2 epochs, reduced dims: proves the script
#
# Fixed epoch budgets (the reference runs up to 300 fine-tuning epochs with
# patience 10 and 100 pre-training epochs on 4 GPUs; these are CPU budgets):
#   FT_EPOCHS=40 fine-tuning / from-scratch epochs (patience 10, as the reference),
#   PT_EPOCHS=10 pre-training epochs (checkpoint every PT_SAVE=5), batch 4096,
#   interest_ratio 0.02 (the reference's pre-training values),
#   SASREC_EPOCHS=40 for SASRec (patience 10).
# Speed (SPEED=1, default): one transductive fine-tuning epoch on Scientific, mmpipe vs the
# PyTorch CPU implementation bench/train/missrec_torch.py (same network, sizes, rows and
# buckets; random features of the same dimension) at THREADS threads.
# Knobs: DATA (../shared/data), OUT (bench/out/missrec), THREADS (2), BIN (bin/mmpipe),
# SETS (extra --set overrides for every MISSRec run), SMOKE (0), SPEED (1).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-bench/out/missrec}
THREADS=${THREADS:-2}
BIN=${BIN:-bin/mmpipe}
SMOKE=${SMOKE:-0}
SPEED=${SPEED:-1}
PY=/usr/bin/python3
FT_EPOCHS=${FT_EPOCHS:-40}
PT_EPOCHS=${PT_EPOCHS:-10}
PT_SAVE=${PT_SAVE:-5}
SASREC_EPOCHS=${SASREC_EPOCHS:-40}
PT_BATCH=${PT_BATCH:-4096}
common=(--set "threads=$THREADS" --set "model.image_features=")
sasrec_extra=()
pt_extra=(--set model.interest_ratio=0.02)
if [ "$SMOKE" = 1 ]; then
  FT_EPOCHS=2 PT_EPOCHS=2 PT_SAVE=1 SASREC_EPOCHS=2 PT_BATCH=512
  OUT=${OUT}-smoke
  common+=(--set model.dim=32 --set model.heads=2 --set model.inner=32 --set model.max_len=20 --set model.interest_ratio=0.1)
  sasrec_extra=(--set model.dim=32)
  pt_extra=()
fi
for s in ${SETS:-}; do common+=(--set "$s"); done
[ -x "$BIN" ] || make build
mkdir -p "$OUT"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

for ds in office scientific; do
  src=$DATA/amazon-$ds
  [ -f "$OUT/$ds/manifest.json" ] || "$BIN" ingest --format recbole --input "$src" --out "$OUT/$ds" >/dev/null
  ls "$OUT/$ds"/features/text.text-hash.arrow >/dev/null 2>&1 || "$BIN" encode --dataset "$OUT/$ds" --encoder text-hash >/dev/null
done

# train NAME MODEL DATASET [args...]: one resumable run into $OUT/NAME.
train() {
  local name=$1 model=$2 ds=$3
  shift 3
  local run="$OUT/$name" args=("$@")
  [ -f "$run/run.json" ] && args=(--resume)
  /usr/bin/time -f '%e s wall, %M KB peak RSS' -o "$run.time" \
    "$BIN" --log-format json train --model "$model" --dataset "$OUT/$ds" --out "$run" "${args[@]}" >"$run.out" 2>"$run.log"
  echo "$name: $(tail -1 "$run.out") ($(cat "$run.time"))"
}

train sci-sasrec sasrec scientific --set "threads=$THREADS" --set "epochs=$SASREC_EPOCHS" "${sasrec_extra[@]}"
for mode in inductive transductive; do
  train "sci-missrec-$mode-scratch" missrec scientific "${common[@]}" --set "model.mode=$mode" --set "epochs=$FT_EPOCHS"
done
train office-missrec-pretrain missrec office "${common[@]}" --set model.stage=pretrain --set "epochs=$PT_EPOCHS" \
  --set "checkpoint_every=$PT_SAVE" --set patience=0 --set "model.batch_size=$PT_BATCH" "${pt_extra[@]}"
ckpt="$OUT/office-missrec-pretrain/checkpoints/last.ckpt"
for mode in inductive transductive; do
  train "sci-missrec-$mode-from-office" missrec scientific "${common[@]}" --set "model.mode=$mode" \
    --set "epochs=$FT_EPOCHS" --init "$ckpt"
done
if [ "$SPEED" = 1 ]; then
  mkdir -p "$OUT/speed"
  dims=(--dim 300 --max-len 50)
  [ "$SMOKE" = 1 ] && dims=(--dim 32 --max-len 20 --interest-ratio 0.1)
  run="$OUT/speed/go-t$THREADS"
  rm -rf "$run"
  GOMAXPROCS=$THREADS "$BIN" --log-format json train --model missrec --dataset "$OUT/scientific" --out "$run" "${common[@]}" \
    --set epochs=1 --set checkpoint_every=1 >/dev/null 2>"$run.log"
  echo "speed go: $(grep -o '"epoch_seconds": *[0-9.]*' "$run/report.json")"
  if [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; then
    source bench/train/openblas.sh
    echo "PyTorch BLAS: $TORCH_BLAS"
    "${TORCH_ENV[@]}" OPENBLAS_NUM_THREADS="$THREADS" "$PY" bench/train/missrec_torch.py "$DATA/amazon-scientific" --epochs 1 --threads "$THREADS" "${dims[@]}" | tee "$OUT/speed/torch-t$THREADS.jsonl"
  else
    echo "python3-torch not installed: PyTorch timing skipped (apt-get install -y python3-torch)"
  fi
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$OUT" <<'PYEOF' | tee "$OUT/summary.md"
import json, os, sys
out = sys.argv[1]
runs = ["sci-sasrec", "sci-missrec-inductive-scratch", "sci-missrec-transductive-scratch",
        "office-missrec-pretrain", "sci-missrec-inductive-from-office", "sci-missrec-transductive-from-office"]
print("| run | test HIT@10 | test NDCG@10 | test HIT@50 | test NDCG@50 | valid NDCG@10 | best epoch | epochs run | s/epoch |")
print("|---|---|---|---|---|---|---|---|---|")
for r in runs:
    p = os.path.join(out, r, "report.json")
    if not os.path.exists(p):
        print(f"| {r} | (no report) |||||||")
        continue
    j = json.load(open(p))
    t, v = j.get("test") or {}, j.get("valid") or {}
    f = lambda d, k: f"{d[k]:.4f}" if k in d else "-"
    print(f"| {r} | {f(t,'hit@10')} | {f(t,'ndcg@10')} | {f(t,'hit@50')} | {f(t,'ndcg@50')} | {f(v,'ndcg@10')} | "
          f"{j.get('best_epoch','-')} | {j.get('epochs_run','-')} | {j.get('epoch_seconds',0):.1f} |")
print("\n(office-missrec-pretrain: test/valid are Office's, a monitor of the pre-training, not a result.)")
PYEOF
