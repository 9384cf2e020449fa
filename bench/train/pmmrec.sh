#!/usr/bin/env bash
# PMMRec benchmark on the Amazon sets (research/models.md §4, frozen backbones:
# token states from `mmpipe encode --tokens`). Protocol seq-loo-masked (history
# masked, all other items ranked), selected on valid HIT@10, test scored once.
#
# Stages (STAGES, default "data scratch pretrain transfer modal"):
#   data      ingest Office, Scientific and the Scientific CLIP subset (RecBole files),
#             encode text-hash --tokens (per-word 384-d token states, at most 50 per item)
#   scratch   Scientific: popularity, SASRec (same split and protocol) and PMMRec from
#             scratch (tower text: these Amazon sets have no images)
#   pretrain  PMMRec pre-training on Office (stage pretrain: next-item + NID + RCL;
#             NICL needs images, so nicl_weight=0 here)
#   transfer  Scientific from the Office checkpoint, transfer = full, item_encoder, user_encoder
#   modal     Scientific CLIP subset, tower modal: text-hash tokens fused with the CLIP
#             image vector (.feat3CLS, pooled: one token per item)
#
# This is NOT the reference's scale: width DIM (128, reference 768), FUSION_HEADS 2
# (head dim 64 as BERT-base), EPOCHS epochs (reference: 5 with pre-trained backbones;
# text-hash tokens carry much less than XLM-R's, hence more epochs and LR 1e-3).
#
#   bash bench/train/pmmrec.sh                                   # full run (hours on 2 cores)
#   SMOKE=1 bash bench/train/pmmrec.sh                           # minutes: 1 epoch, 8 tokens, Office only
#
# Knobs: DATA (../shared/data), OUT (bench/out/pmmrec), MMPIPE (bin/mmpipe), THREADS (2),
# DIM (128), FUSION_HEADS (2), LR (1e-3), EPOCHS (10), PRE_EPOCHS (5), MAX_TOKENS (50),
# SETS (extra --set overrides for every pmmrec run). Runs are resumable (re-run the script).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-bench/out/pmmrec}
MMPIPE=${MMPIPE:-bin/mmpipe}
THREADS=${THREADS:-2}
DIM=${DIM:-128}
FUSION_HEADS=${FUSION_HEADS:-2}
LR=${LR:-1e-3}
EPOCHS=${EPOCHS:-10}
PRE_EPOCHS=${PRE_EPOCHS:-5}
MAX_TOKENS=${MAX_TOKENS:-50}
STAGES=${STAGES:-"data scratch pretrain transfer modal"}
TARGET=scientific
if [ -n "${SMOKE:-}" ]; then
  EPOCHS=1 PRE_EPOCHS=1 MAX_TOKENS=8 TARGET=office
  STAGES=${SMOKE_STAGES:-"data scratch pretrain transfer"}
  OUT=${OUT%/}-smoke
fi
PY=/usr/bin/python3
mkdir -p "$OUT"
[ -x "$MMPIPE" ] || make build
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

common=(--set "threads=$THREADS" --set "model.dim=$DIM" --set "model.fusion_heads=$FUSION_HEADS"
        --set "model.lr=$LR" --set "model.max_tokens=$MAX_TOKENS")
for s in ${SETS:-}; do common+=(--set "$s"); done

# train NAME DATASET MODEL [args...]: one resumable run into $OUT/NAME.
train() {
  local name=$1 ds=$2 model=$3; shift 3
  local run="$OUT/$name" args=("$@")
  [ -f "$run/run.json" ] && args=(--resume)
  echo "== $name ($model on $ds)"
  /usr/bin/time -f '%e s wall, %M KB peak RSS' -o "$run.time" \
    "$MMPIPE" train --model "$model" --dataset "$OUT/$ds" --out "$run" "${args[@]}" >"$run.out" 2>"$run.log"
  tail -2 "$run.out"
}

if [[ " $STAGES " == *" data "* ]]; then
  for pair in office:amazon-office scientific:amazon-scientific sciclip:amazon-scientific-clipsubset; do
    ds=${pair%%:*} src=${pair#*:}
    if [ -n "${SMOKE:-}" ] && [ "$ds" != office ]; then continue; fi
    feat=()
    [ "$ds" = sciclip ] && feat=(--feat-dim 512) # headerless CLIP .feat1CLS / .feat3CLS
    [ -f "$OUT/$ds/manifest.json" ] || "$MMPIPE" ingest --format recbole --input "$DATA/$src" --out "$OUT/$ds" "${feat[@]}" >/dev/null
    [ -f "$OUT/$ds/features/text.text-hash.tokens.arrow" ] || "$MMPIPE" encode --dataset "$OUT/$ds" --encoder text-hash --tokens >/dev/null
  done
  ls "$OUT"/*/features/
fi

ep=(--set "epochs=$EPOCHS")
if [[ " $STAGES " == *" scratch "* ]]; then
  train "$TARGET-pop" "$TARGET" pop --set protocol=seq-loo-masked
  # SASRec with its RecBole defaults (early stopping), on the same split and protocol.
  sas=(--set protocol=seq-loo-masked --set "threads=$THREADS")
  [ -n "${SMOKE:-}" ] && sas+=(--set epochs=1)
  train "$TARGET-sasrec" "$TARGET" sasrec "${sas[@]}"
  train "$TARGET-pmmrec-scratch" "$TARGET" pmmrec "${common[@]}" "${ep[@]}" --set model.tower=text
fi
if [[ " $STAGES " == *" pretrain "* ]]; then
  train office-pmmrec-pretrain office pmmrec "${common[@]}" --set "epochs=$PRE_EPOCHS" --set model.tower=text \
    --set model.stage=pretrain --set model.nicl_weight=0
fi
if [[ " $STAGES " == *" transfer "* ]]; then
  ck="$OUT/office-pmmrec-pretrain/checkpoints/last.ckpt"
  for mode in full item_encoder user_encoder; do
    a=("${common[@]}" "${ep[@]}" --set model.tower=text --set "model.transfer=$mode")
    [ -f "$OUT/$TARGET-pmmrec-$mode/run.json" ] || a+=(--init "$ck")
    train "$TARGET-pmmrec-$mode" "$TARGET" pmmrec "${a[@]}"
    grep -o 'pmmrec transfer.*tensors=[0-9]*' "$OUT/$TARGET-pmmrec-$mode.log" | head -1 || true
  done
fi
if [[ " $STAGES " == *" modal "* ]]; then
  # The CLIP subset's pooled CLIP text and image vectors, one token each.
  train sciclip-sasrec sciclip sasrec --set protocol=seq-loo-masked --set "threads=$THREADS" --set patience=5
  train sciclip-pmmrec-modal sciclip pmmrec "${common[@]}" "${ep[@]}" --set model.tower=modal \
    --set model.text_features=text.imported --set model.image_features=image.imported
  train sciclip-pmmrec-text sciclip pmmrec "${common[@]}" "${ep[@]}" --set model.tower=text --set model.text_features=text.imported
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$OUT" <<'PYEOF' | tee "$OUT/summary.md"
import glob, json, os, sys
out = sys.argv[1]
print("| run | test HIT@10 | test NDCG@10 | valid HIT@10 | best epoch | epochs run | s/epoch | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|")
for p in sorted(glob.glob(os.path.join(out, "*", "report.json"))):
    r = json.load(open(p))
    t, v = r.get("test", {}), r.get("valid", {})
    print(f"| {os.path.basename(os.path.dirname(p))} | {t.get('hit@10', float('nan')):.4f} | {t.get('ndcg@10', float('nan')):.4f} | "
          f"{v.get('hit@10', float('nan')):.4f} | {r.get('best_epoch')} | {r.get('epochs_run')} | {r.get('epoch_seconds', 0):.1f} | "
          f"{r.get('peak_rss_bytes', 0) / 2**20:.0f} |")
PYEOF
