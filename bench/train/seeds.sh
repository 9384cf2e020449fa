#!/usr/bin/env bash
# Seed spread of one model configuration: trains MODEL once per seed in
# SEEDS with the same settings (model selection on validation, test at the
# best validation epoch, as every run) and prints a markdown table of each
# seed's best epoch, validation and test Recall@20 / NDCG@20, then their
# mean and sample standard deviation (also written to $OUT/summary.md).
# Differences between two configurations smaller than these spreads are
# noise; a single seed's figure is one draw.
#
#   MODEL=lightgcn bash bench/train/seeds.sh
#   MODEL=mmssl SEEDS="2022 2023" THREADS=1 \
#     SETS="epochs=40 patience=10 model.mode=intended model.no_adversarial=true model.cl_rate=0" \
#     bash bench/train/seeds.sh
#
# Knobs (environment): MODEL (lightgcn), SEEDS ("2022 2023 2024 2025 2026
# 2027"), SETS (KEY=VALUE settings for every run, passed as --set), THREADS
# (2), DATA (../shared/data: raw TikTok, ingested if DATASET is missing),
# DATASET (bench/out/train/tiktok), SPLIT (the dataset's default), OUT
# (bench/out/train/seeds/MODEL; threads are part of a run's settings, so
# re-running into it with another THREADS is refused), MMPIPE (bin/mmpipe), PARALLEL (1: seeds run
# one after the other; N runs N at a time, each on THREADS threads). Runs
# resume where an interrupted invocation stopped; a complete run is skipped.
# The summary is printed even when a seed failed (its row says so); the
# exit status is then 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-lightgcn}
SEEDS=${SEEDS:-"2022 2023 2024 2025 2026 2027"}
SETS=${SETS:-}
THREADS=${THREADS:-2}
DATA=${DATA:-../shared/data}
DATASET=${DATASET:-bench/out/train/tiktok}
SPLIT=${SPLIT:-}
OUT=${OUT:-bench/out/train/seeds/$MODEL}
MMPIPE=${MMPIPE:-bin/mmpipe}
PARALLEL=${PARALLEL:-1}
case "$PARALLEL" in '' | *[!0-9]* | 0) echo "PARALLEL=$PARALLEL: want a positive integer" >&2; exit 2 ;; esac
mkdir -p "$OUT"
if [ "$MMPIPE" = bin/mmpipe ] && [ ! -x bin/mmpipe ]; then make build; fi
if [ ! -f "$DATASET/manifest.json" ]; then
  "$MMPIPE" ingest --format mmrec --input "$DATA/tiktok" --out "$DATASET" >/dev/null
fi
args=(--model "$MODEL" --dataset "$DATASET" --set "threads=$THREADS")
[ -n "$SPLIT" ] && args+=(--split "$SPLIT")
for kv in $SETS; do args+=(--set "$kv"); done
one() {
  local s=$1 run="$OUT/s$1" resume=()
  [ -f "$run/run.json" ] && resume=(--resume)
  echo "seed $s: $run" >&2
  GOMAXPROCS=$THREADS "$MMPIPE" --log-format json train "${args[@]}" --set "seed=$s" --out "$run" ${resume[@]+"${resume[@]}"} \
    >"$run.out" 2>"$run.log" || { echo "seed $s failed: see $run.log" >&2; return 1; }
}
pids=()
fail=0
for s in $SEEDS; do
  one "$s" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$PARALLEL" ]; then
    wait "${pids[0]}" || fail=1
    pids=("${pids[@]:1}")
  fi
done
for p in ${pids[@]+"${pids[@]}"}; do wait "$p" || fail=1; done
/usr/bin/python3 - "$OUT" "$MODEL" "$SETS" $SEEDS <<'EOF' | tee "$OUT/summary.md"
import json, os, statistics, sys
out, model, sets, seeds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
print(f"{model} ({sets or 'defaults'}), one run per seed\n")
print("| seed | best epoch / run | valid Recall@20 | test Recall@20 | test NDCG@20 |")
print("|---|---|---|---|---|")
cols = {"v": [], "r": [], "n": []}
for s in seeds:
    p = os.path.join(out, f"s{s}", "report.json")
    if not os.path.exists(p):
        print(f"| {s} | (no report) | | | |")
        continue
    d = json.load(open(p))
    v, r, n = d["valid"].get("recall@20"), d["test"].get("recall@20"), d["test"].get("ndcg@20")
    if None in (v, r, n):
        print(f"| {s} | {d['best_epoch']} / {d['epochs_run']} | (no @20 metrics: ks lacks 20) | | |")
        continue
    cols["v"].append(v); cols["r"].append(r); cols["n"].append(n)
    print(f"| {s} | {d['best_epoch']} / {d['epochs_run']} | {v:.4f} | {r:.4f} | {n:.4f} |")
def ms(x):
    if not x:
        return ""
    if len(x) == 1:
        return f"{x[0]:.4f} (one seed)"
    return f"{statistics.mean(x):.4f} ± {statistics.stdev(x):.4f}"
print(f"| mean ± sd ({len(cols['r'])}) | | {ms(cols['v'])} | {ms(cols['r'])} | {ms(cols['n'])} |")
EOF
exit $fail
