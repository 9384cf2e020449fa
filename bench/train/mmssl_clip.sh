#!/usr/bin/env bash
# MMSSL on image + text features against LightGCN, MF-BPR and popularity
# (issue #6): amazon-scientific-clipsubset, real CLIP ViT-B/32 512-d text
# (.feat1CLS) and image (.feat3CLS) features, the source's leave-one-out
# split read as a graph split (train items masked, one valid and one test
# item per user, so Recall@20 is a hit rate), model selection on validation,
# test at the best validation epoch. Every arm runs once per seed through
# bench/train/seeds.sh; the summary of each arm is printed at the end.
#
#   bash bench/train/mmssl_clip.sh
#   ARMS="lightgcn mmssl-l" SEEDS="2022" bash bench/train/mmssl_clip.sh
#
# Arms: pop, lightgcn, mf (trainer core, their model defaults), mmssl-faithful
# (the reference's settings, critic included), mmssl-intended (the same in
# intended mode), mmssl-l-nomod (MMSSL's code on a LightGCN-equivalent
# backbone: sym graphs, no feature-axis softmax, parallel propagation, 3
# layers, lr 1e-3, init 0.1, reg 1e-4, no weight decay, no critic, no
# InfoNCE, no modality branch), mmssl-l (the same with the modality branch,
# graphs held at R, standardised features), mmssl-l-mc01 (model_cat_rate
# 0.1), mmssl-l-gen (the same as mmssl-l with the paper's generated graphs
# rebuilt every batch instead of held at R).
#
# Every arm gets the same stopping rule: PATIENCE (40) validations without
# a gain, never before MIN_EPOCHS (50; MF-BPR needs ~25 epochs to start
# learning on this small set), at most EPOCHS (400) epochs, or CRITIC_EPOCHS
# (100) for the two arms with the critic.
#
# Knobs (environment): ARMS, SEEDS ("2022 2023 2024"), CRITIC_SEEDS (the
# arms with the critic, about 8 s per epoch: "2022"), THREADS (1 per
# run), PARALLEL (2 runs at a time), EPOCHS, CRITIC_EPOCHS, PATIENCE,
# MIN_EPOCHS, DATA (../shared/data), OUT (bench/out/train/sciclip), MMPIPE
# (bin/mmpipe).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-bench/out/train/sciclip}
SEEDS=${SEEDS:-"2022 2023 2024"}
CRITIC_SEEDS=${CRITIC_SEEDS:-2022}
THREADS=${THREADS:-1}
PARALLEL=${PARALLEL:-2}
EPOCHS=${EPOCHS:-400}
CRITIC_EPOCHS=${CRITIC_EPOCHS:-100}
PATIENCE=${PATIENCE:-40}
MIN_EPOCHS=${MIN_EPOCHS:-50}
MMPIPE=${MMPIPE:-bin/mmpipe}
ARMS=${ARMS:-"pop lightgcn mf mmssl-faithful mmssl-intended mmssl-l-nomod mmssl-l mmssl-l-mc01 mmssl-l-gen"}
if [ "$MMPIPE" = bin/mmpipe ] && [ ! -x bin/mmpipe ]; then make build; fi
DS=$OUT/data
if [ ! -f "$DS/manifest.json" ]; then
  "$MMPIPE" ingest --format recbole --input "$DATA/amazon-scientific-clipsubset" --feat-dim 512 --out "$DS" >/dev/null
fi
S="patience=$PATIENCE min_epochs=$MIN_EPOCHS"
B="epochs=$EPOCHS $S"
C="epochs=$CRITIC_EPOCHS $S"
L="$B model.mode=intended model.no_adversarial=true model.cl_rate=0 model.graph_norm=sym model.cf_softmax=false"
L="$L model.cf_prop=parallel model.cf_layers=3 model.lr=0.001 model.embed_init_std=0.1 model.reg=0.0001 model.weight_decay=0"
fail=0
for arm in $ARMS; do
  case $arm in
  pop) model=$arm sets="" ;;
  lightgcn | mf) model=$arm sets="$B" ;;
  mmssl-faithful) model=mmssl sets="$C" ;;
  mmssl-intended) model=mmssl sets="$C model.mode=intended" ;;
  mmssl-l-nomod) model=mmssl sets="$L model.no_modality=true" ;;
  mmssl-l) model=mmssl sets="$L model.t=1000 model.feat_standardize=true" ;;
  mmssl-l-mc01) model=mmssl sets="$L model.t=1000 model.feat_standardize=true model.model_cat_rate=0.1" ;;
  mmssl-l-gen) model=mmssl sets="$L model.feat_standardize=true" ;;
  *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
  seeds=$SEEDS
  case $arm in
  pop) seeds=${SEEDS%% *} ;;                   # deterministic: one run
  mmssl-faithful | mmssl-intended) seeds=$CRITIC_SEEDS ;; # the critic: ~8 s per epoch
  esac
  echo "== $arm" >&2
  MODEL=$model DATASET=$DS OUT=$OUT/$arm SEEDS=$seeds THREADS=$THREADS PARALLEL=$PARALLEL \
    SETS="$sets" MMPIPE=$MMPIPE bash bench/train/seeds.sh >/dev/null || fail=1
done
for arm in $ARMS; do
  echo "### $arm"
  cat "$OUT/$arm/summary.md"
  echo
done
exit $fail
