#!/usr/bin/env bash
# PMMRec pre-training ablation (issue #8): which of our pre-training objectives
# (NICL, NID, RCL; research/models.md §4.7, our reading of the paper) helps a
# transfer. Source and target are two demo samples drawn with different seeds
# (`gen demo --seed 1|2`: text + drawn images, no shared item ids), each
# ingested with a leave-one-out split, crawled from its image folder and
# encoded with the built-in encoders' token outputs (text-hash: per-word 384-d,
# image-stats: 7×7 patches). For each arm the model is pre-trained on the source
# (stage pretrain, tower modal) and fine-tuned on the target with
# transfer=full; "scratch" fine-tunes on the target from a random init.
# Protocol seq-loo-masked, selection on valid HIT@10, test scored once.
#
#   bash bench/train/pmmrec_ablation.sh
#
# Knobs: OUT (bench/out/pmmrec-ablation), MMPIPE (bin/mmpipe), SEEDS ("1 2 3",
# training seeds), PRE_EPOCHS (10), EPOCHS (10), DIM (64), MAX_TOKENS (16),
# LR (1e-3), THREADS (2). Re-running skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/out/pmmrec-ablation}
MMPIPE=${MMPIPE:-bin/mmpipe}
SEEDS=${SEEDS:-"1 2 3"}
PRE_EPOCHS=${PRE_EPOCHS:-10}
EPOCHS=${EPOCHS:-10}
DIM=${DIM:-64}
MAX_TOKENS=${MAX_TOKENS:-16}
LR=${LR:-1e-3}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
[ -x "$MMPIPE" ] || make build
GEN=$OUT/gen
[ -x "$GEN" ] || go build -o "$GEN" ./bench/gen
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

for s in 1 2; do
  ds=$OUT/ds$s raw=$OUT/raw$s
  [ -f "$raw/meta_Demo_Products.json.gz" ] || "$GEN" demo --out "$raw" --seed "$s" >/dev/null
  if [ ! -f "$ds/features/image.image-stats.tokens.arrow" ]; then
    "$MMPIPE" ingest --format amazon2018 --input "$raw/Demo_Products.json.gz" --input "$raw/meta_Demo_Products.json.gz" \
      --out "$ds" --split loo >/dev/null
    "$MMPIPE" crawl --dataset "$ds" --from-dir "$raw/images" >/dev/null
    "$MMPIPE" encode --dataset "$ds" --encoder text-hash --tokens >/dev/null
    "$MMPIPE" encode --dataset "$ds" --encoder image-stats --tokens >/dev/null
  fi
done

common=(--set "threads=$THREADS" --set "model.dim=$DIM" --set "model.fusion_heads=$((DIM / 64 > 0 ? DIM / 64 : 1))"
        --set "model.lr=$LR" --set "model.max_tokens=$MAX_TOKENS" --set model.tower=modal
        --set model.text_features=text.text-hash.tokens --set model.image_features=image.image-stats.tokens)

run() { # run NAME DATASET args...: one run into $OUT/runs/NAME unless it is complete
  local name=$1 ds=$2; shift 2
  local r=$OUT/runs/$name
  [ -f "$r/report.json" ] && return 0
  rm -rf "$r"
  /usr/bin/time -f '%e s wall, %U user, %S sys, %M KB peak RSS' -o "$r.time" \
    "$MMPIPE" train --model pmmrec --dataset "$OUT/$ds" --out "$r" "${common[@]}" "$@" >"$r.out" 2>"$r.log"
  echo "$name: $(grep -o 'test .*hit@10 [0-9.]*' "$r.out" | grep -o 'hit@10 [0-9.]*' | head -1)"
}
mkdir -p "$OUT/runs"

declare -A ARMS=(
  [all]="model.nicl_weight=0.4 model.nid_weight=0.1 model.rcl_weight=0.1"
  [no-nicl]="model.nicl_weight=0 model.nid_weight=0.1 model.rcl_weight=0.1"
  [no-nid]="model.nicl_weight=0.4 model.nid_weight=0 model.rcl_weight=0.1"
  [no-rcl]="model.nicl_weight=0.4 model.nid_weight=0.1 model.rcl_weight=0"
  [next-item]="model.nicl_weight=0 model.nid_weight=0 model.rcl_weight=0"
)
for seed in $SEEDS; do
  run "scratch-s$seed" ds2 --set "seed=$seed" --set "epochs=$EPOCHS"
  for arm in all no-nicl no-nid no-rcl next-item; do
    sets=(--set "seed=$seed" --set "epochs=$PRE_EPOCHS" --set model.stage=pretrain)
    for kv in ${ARMS[$arm]}; do sets+=(--set "$kv"); done
    run "pre-$arm-s$seed" ds1 "${sets[@]}"
    run "ft-$arm-s$seed" ds2 --set "seed=$seed" --set "epochs=$EPOCHS" --set model.transfer=full \
      --init "$OUT/runs/pre-$arm-s$seed/checkpoints/last.ckpt"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

/usr/bin/python3 - "$OUT/runs" "$SEEDS" <<'PYEOF' | tee "$OUT/summary.md"
import json, os, statistics, sys
runs, seeds = sys.argv[1], sys.argv[2].split()
print("| target run | test HIT@10 (mean ± sd over seeds) | test NDCG@10 | per seed HIT@10 |")
print("|---|---|---|---|")
for arm in ["scratch", "ft-all", "ft-no-nicl", "ft-no-nid", "ft-no-rcl", "ft-next-item"]:
    h, n = [], []
    for s in seeds:
        p = os.path.join(runs, f"{arm}-s{s}", "report.json")
        if os.path.exists(p):
            t = json.load(open(p))["test"]
            h.append(t["hit@10"]); n.append(t["ndcg@10"])
    if not h:
        continue
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
    print(f"| {arm} | {statistics.mean(h):.4f} ± {sd(h):.4f} | {statistics.mean(n):.4f} ± {sd(n):.4f} | "
          + " ".join(f"{x:.4f}" for x in h) + " |")
PYEOF
