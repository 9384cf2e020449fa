#!/usr/bin/env bash
# Baseline benchmark: popularity, MF-BPR and LightGCN on TikTok and Amazon
# Baby (full ranking, train items masked, selected on validation Recall@20,
# test scored once), then LightGCN training epochs side by side with a
# PyTorch CPU implementation of the same model and sizes at the same number
# of threads. Prints markdown tables (also written to $OUT/summary.md); the
# figures go to BENCHMARKS.md.
#
#   bash bench/train/run.sh                 # everything
#   STAGES=speed bash bench/train/run.sh     # only the timing comparison
#   STAGES=quality MODELS="pop mf" DATASETS=tiktok bash bench/train/run.sh
#
# Quality runs resume where a previous invocation stopped (--resume), so the
# script can be interrupted and re-run. Knobs (environment):
#   DATA (../shared/data), OUT (bench/out/train), THREADS (2), EPOCHS (1000),
#   PATIENCE (10 validations), EVAL_EVERY (5), SPEED_EPOCHS (5),
#   SPEED_THREADS ("1 2"), STAGES ("quality speed"), MODELS, DATASETS.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-bench/out/train}
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-1000}
PATIENCE=${PATIENCE:-10}
EVAL_EVERY=${EVAL_EVERY:-5}
SPEED_EPOCHS=${SPEED_EPOCHS:-5}
SPEED_THREADS=${SPEED_THREADS:-"1 2"}
STAGES=${STAGES:-"quality speed"}
MODELS=${MODELS:-"pop mf lightgcn"}
DATASETS=${DATASETS:-"tiktok baby"}
PY=/usr/bin/python3
mkdir -p "$OUT/runs" "$OUT/speed"
[ -x bin/mmpipe ] || make build

declare -A FORMAT=([tiktok]=mmrec [baby]=mmssl)
declare -A SRC=([tiktok]=tiktok [baby]=amazon-baby)
for ds in $DATASETS; do
  bin/mmpipe ingest --format "${FORMAT[$ds]}" --input "$DATA/${SRC[$ds]}" --out "$OUT/$ds" >/dev/null
done
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

if [[ " $STAGES " == *" quality "* ]]; then
  for ds in $DATASETS; do
    for m in $MODELS; do
      run="$OUT/runs/$ds-$m"
      resume=()
      [ -f "$run/run.json" ] && resume=(--resume)
      sets=(--set "threads=$THREADS")
      if [ ${#resume[@]} -eq 0 ] && [ "$m" != pop ]; then
        sets+=(--set "epochs=$EPOCHS" --set "patience=$PATIENCE" --set "eval_every=$EVAL_EVERY" --set "checkpoint_every=$EVAL_EVERY")
      fi
      [ ${#resume[@]} -gt 0 ] && sets=()
      echo "== $m on $ds ($run)"
      /usr/bin/time -f '%e s wall, %M KB peak RSS' -o "$run.time" \
        bin/mmpipe --log-format json train --model "$m" --dataset "$OUT/$ds" --out "$run" "${resume[@]}" "${sets[@]}" \
        >"$run.out" 2>"$run.log" || { echo "failed: see $run.log"; tail -3 "$run.log"; }
      tail -3 "$run.out"
    done
  done
fi

if [[ " $STAGES " == *" speed "* ]]; then
  for ds in $DATASETS; do
    for t in $SPEED_THREADS; do
      for rep in 1 2; do
        run="$OUT/speed/$ds-go-t$t-$rep"
        rm -rf "$run"
        GOMAXPROCS=$t bin/mmpipe --log-format json train --model lightgcn --dataset "$OUT/$ds" --out "$run" \
          --set "threads=$t" --set "epochs=$SPEED_EPOCHS" --set "eval_every=$SPEED_EPOCHS" --set "checkpoint_every=$SPEED_EPOCHS" \
          >/dev/null 2>"$run.log"
        if [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; then
          source bench/train/openblas.sh
          for sp in coo csr; do
            "${TORCH_ENV[@]}" OPENBLAS_NUM_THREADS="$t" "$PY" -W ignore bench/train/lightgcn_torch.py --data "$DATA/${SRC[$ds]}" --name "$ds" --threads "$t" \
              --epochs "$SPEED_EPOCHS" --sparse "$sp" >"$OUT/speed/$ds-torch-$sp-t$t-$rep.json"
          done
        else
          echo "python3-torch not installed: PyTorch timing skipped (apt-get install -y python3-torch)"
        fi
      done
    done
  done
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$OUT" $DATASETS <<'EOF' | tee "$OUT/summary.md"
import glob, json, os, statistics, sys
out, datasets = sys.argv[1], sys.argv[2:]
print("| dataset | model | test Recall@20 | test NDCG@20 | valid Recall@20 | best epoch | epochs run | s/epoch (median) | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|")
for ds in datasets:
    for m in ("pop", "mf", "lightgcn"):
        p = os.path.join(out, "runs", f"{ds}-{m}", "report.json")
        if not os.path.exists(p):
            continue
        r = json.load(open(p))
        print(f"| {ds} | {m} | {r['test'].get('recall@20', 0):.4f} | {r['test'].get('ndcg@20', 0):.4f} | "
              f"{r['valid'].get('recall@20', 0):.4f} | {r['best_epoch']} | {r['epochs_run']} | {r['epoch_seconds']:.3f} | "
              f"{r['peak_rss_bytes'] / 2**20:.0f} |")
rows = []
for ds in datasets:
    for t in (1, 2):
        go = [json.load(open(p)) for p in glob.glob(os.path.join(out, "speed", f"{ds}-go-t{t}-*", "report.json"))]
        if not go:
            continue
        g = statistics.median(r["epoch_seconds"] for r in go)
        gc = statistics.median(r["epoch_cpu_seconds"] for r in go)
        line = f"| {ds} | {t} | {g:.3f} / {gc:.3f}"
        for sp in ("coo", "csr"):
            tj = [json.load(open(p)) for p in glob.glob(os.path.join(out, "speed", f"{ds}-torch-{sp}-t{t}-*.json"))]
            if tj:
                tt = statistics.median(r["median_epoch_seconds"] for r in tj)
                tc = statistics.median(r["median_epoch_cpu_seconds"] for r in tj)
                line += f" | {tt:.3f} / {tc:.3f} | {g / tt:.2f}× / {gc / tc:.2f}×"
            else:
                line += " | – | –"
        rows.append(line + " |")
if rows:
    print()
    print("LightGCN training epoch, wall / CPU seconds (median), mmpipe vs PyTorch at the same number of threads:")
    print()
    print("| dataset | threads | mmpipe | PyTorch COO | ratio wall / CPU | PyTorch CSR | ratio wall / CPU |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
EOF
