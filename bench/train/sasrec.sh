#!/usr/bin/env bash
# SASRec benchmark on Amazon Scientific (the UniSRec/MISSRec leave-one-out split,
# protocol seq-loo: all items ranked, history not masked, selected on valid NDCG@10,
# test scored once), then SASRec training epochs side by side with a PyTorch CPU
# implementation of the same model, data, windows and shapes
# (bench/train/sasrec_torch.py) at the same number of threads.
#
#   bash bench/train/sasrec.sh                  # quality run (resumable) + speed
#   STAGES=speed SPEED_THREADS=2 bash bench/train/sasrec.sh
#
# Knobs: DATA (../shared/data), OUT (bench/out/sasrec), THREADS (2), STAGES ("quality speed"),
# SPEED_EPOCHS (2), SPEED_THREADS ("1 2"), SETS (extra --set overrides for the quality run).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-bench/out/sasrec}
THREADS=${THREADS:-2}
STAGES=${STAGES:-"quality speed"}
SPEED_EPOCHS=${SPEED_EPOCHS:-2}
SPEED_THREADS=${SPEED_THREADS:-"1 2"}
PY=/usr/bin/python3
mkdir -p "$OUT/speed"
[ -x bin/mmpipe ] || make build
[ -f "$OUT/scientific/manifest.json" ] || bin/mmpipe ingest --format recbole --input "$DATA/amazon-scientific" --out "$OUT/scientific" >/dev/null
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

if [[ " $STAGES " == *" quality "* ]]; then
  run="$OUT/scientific-sasrec"
  args=(--set "threads=$THREADS")
  for s in ${SETS:-}; do args+=(--set "$s"); done
  [ -f "$run/run.json" ] && args=(--resume)
  /usr/bin/time -f '%e s wall, %M KB peak RSS' -o "$run.time" \
    bin/mmpipe --log-format json train --model sasrec --dataset "$OUT/scientific" --out "$run" "${args[@]}" >"$run.out" 2>"$run.log"
  tail -3 "$run.out"
fi

if [[ " $STAGES " == *" speed "* ]]; then
  for t in $SPEED_THREADS; do
    run="$OUT/speed/go-t$t"
    rm -rf "$run"
    GOMAXPROCS=$t bin/mmpipe --log-format json train --model sasrec --dataset "$OUT/scientific" --out "$run" \
      --set "threads=$t" --set "epochs=$SPEED_EPOCHS" --set "eval_every=$SPEED_EPOCHS" --set "checkpoint_every=$SPEED_EPOCHS" \
      >/dev/null 2>"$run.log"
    if [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; then
      source bench/train/openblas.sh
      echo "PyTorch BLAS: $TORCH_BLAS"
      "${TORCH_ENV[@]}" OPENBLAS_NUM_THREADS="$t" "$PY" bench/train/sasrec_torch.py "$DATA/amazon-scientific" --epochs "$SPEED_EPOCHS" --threads "$t" >"$OUT/speed/torch-t$t.jsonl"
    else
      echo "python3-torch not installed: PyTorch timing skipped (apt-get install -y python3-torch)"
    fi
  done
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$OUT" <<'PYEOF' | tee "$OUT/summary.md"
import glob, json, os, statistics, sys
out = sys.argv[1]
p = os.path.join(out, "scientific-sasrec", "report.json")
if os.path.exists(p):
    r = json.load(open(p))
    print("| dataset | model | test HIT@10 | test NDCG@10 | valid HIT@10 | valid NDCG@10 | best epoch | epochs run | s/epoch | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| amazon-scientific | sasrec | {r['test']['hit@10']:.4f} | {r['test']['ndcg@10']:.4f} | {r['valid']['hit@10']:.4f} | "
          f"{r['valid']['ndcg@10']:.4f} | {r['best_epoch']} | {r['epochs_run']} | {r['epoch_seconds']:.1f} | {r['peak_rss_bytes'] / 2**20:.0f} |")
rows = []
for t in (1, 2):
    rp = os.path.join(out, "speed", f"go-t{t}", "report.json")
    tp = os.path.join(out, "speed", f"torch-t{t}.jsonl")
    if not (os.path.exists(rp) and os.path.exists(tp)):
        continue
    r = json.load(open(rp))
    ep = [json.loads(l) for l in open(tp) if l.strip()]
    tt = statistics.median(e["seconds"] for e in ep)
    tc = statistics.median(e["cpu_seconds"] for e in ep)
    rows.append(f"| {t} | {r['epoch_seconds']:.1f} / {r['epoch_cpu_seconds']:.1f} | {tt:.1f} / {tc:.1f} | "
                f"{r['epoch_seconds'] / tt:.2f}× / {r['epoch_cpu_seconds'] / tc:.2f}× |")
if rows:
    print()
    print("SASRec training epoch on Amazon Scientific (37 steps), wall / CPU seconds, mmpipe (GoMLX go backend) vs PyTorch:")
    print()
    print("| threads | mmpipe | PyTorch | ratio wall / CPU |")
    print("|---|---|---|---|")
    print("\n".join(rows))
PYEOF
