#!/usr/bin/env bash
# MMSSL benchmark on TikTok (given split, image + audio features): the
# faithful and intended modes and the ablations (no_adversarial, cl_rate 0,
# no_modality), each trained for the same FIXED budget of EPOCHS epochs
# (validation Recall@20 every epoch, test scored once at the best validation
# epoch), then one training epoch of faithful mode side by side with the
# PyTorch CPU implementation (bench/train/mmssl_torch.py) at the same number
# of threads. Prints markdown tables (also written to $OUT/summary.md).
#
#   bash bench/train/mmssl.sh                                  # every arm, then the speed comparison
#   STAGES=quality ARMS="faithful-noadv intended-noadv" bash bench/train/mmssl.sh
#   STAGES=speed bash bench/train/mmssl.sh
#   NICE=10 EPOCHS=1 ARMS=faithful-noadv STAGES=quality DATASET=demo/dataset SPLIT=random OUT=/tmp/x bash bench/train/mmssl.sh
#
# Arms (ARMS, default "faithful intended faithful-noadv faithful-nocl
# faithful-nomod"): MODE or MODE-ABLATION[-ABLATION...] with MODE faithful |
# intended and each ABLATION noadv (model.no_adversarial=true: no critic at all), nocl
# (model.cl_rate=0: no InfoNCE) or nomod (model.no_modality=true: U*, I*
# from the ID/CF branch only); intended-noadv-nocl removes two parts. In faithful mode on TikTok the contrastive
# term and the fused branch are already dead after batch 1 (quirk Q1,
# research/models.md §2.12), so the intended-* ablations are the ones that
# remove a working part.
#
# Quality runs resume where a previous invocation stopped (--resume when
# RUN/run.json exists), so the script can be interrupted and re-run; a
# complete run is skipped. Knobs (environment):
#   EPOCHS (6: the fixed budget per arm), PATIENCE (EPOCHS + 1, so that
#   every arm runs all of them), EXTRA (more KEY=VALUE settings for every
#   arm, e.g. "model.graph_norm=sym model.cf_softmax=false"), THREADS (2), SPEED_THREADS (2), STAGES ("quality
#   speed"), ARMS, NICE (0: the nice level of every run), DATA
#   (../shared/data: the raw TikTok files for ingest and for PyTorch),
#   DATASET (bench/out/train/tiktok, ingested if missing), SPLIT (the
#   dataset's default), OUT (bench/out/train/mmssl), MMPIPE (bin/mmpipe),
#   TORCH (1; 0 skips the PyTorch run of the speed stage).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
DATASET=${DATASET:-bench/out/train/tiktok}
SPLIT=${SPLIT:-}
OUT=${OUT:-bench/out/train/mmssl}
THREADS=${THREADS:-2}
SPEED_THREADS=${SPEED_THREADS:-2}
EPOCHS=${EPOCHS:-6}
PATIENCE=${PATIENCE:-$((EPOCHS + 1))}
EXTRA=${EXTRA:-}
NICE=${NICE:-0}
STAGES=${STAGES:-"quality speed"}
ARMS=${ARMS:-"faithful intended faithful-noadv faithful-nocl faithful-nomod"}
MMPIPE=${MMPIPE:-bin/mmpipe}
TORCH=${TORCH:-1}
PY=/usr/bin/python3
TIME=(/usr/bin/time -f '%e s wall, %U s user, %S s sys, %M KB peak RSS')
mkdir -p "$OUT/runs" "$OUT/speed"
if [ "$MMPIPE" = bin/mmpipe ] && [ ! -x bin/mmpipe ]; then make build; fi
if [ ! -f "$DATASET/manifest.json" ]; then
  "$MMPIPE" ingest --format mmrec --input "$DATA/tiktok" --out "$DATASET" >/dev/null
fi
split=()
[ -n "$SPLIT" ] && split=(--split "$SPLIT")

# arm_sets ARM: the --set flags of an arm.
arm_sets() {
  local mode=${1%%-*} rest="" abl
  [[ "$1" == *-* ]] && rest=${1#*-}
  case "$mode" in faithful | intended) ;; *) echo "unknown arm $1 (mode faithful|intended)" >&2; return 1 ;; esac
  echo "--set model.mode=$mode"
  local kv
  for kv in $EXTRA; do echo "--set $kv"; done
  local IFS=-
  for abl in $rest; do
    case "$abl" in
      noadv) echo "--set model.no_adversarial=true" ;;
      nocl) echo "--set model.cl_rate=0" ;;
      nomod) echo "--set model.no_modality=true" ;;
      *) echo "unknown ablation $abl in arm $1 (noadv|nocl|nomod)" >&2; return 1 ;;
    esac
  done
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, nice $NICE"
if [[ " $STAGES " == *" quality "* ]]; then
  for arm in $ARMS; do arm_sets "$arm" >/dev/null || exit 2; done
  for arm in $ARMS; do
    run="$OUT/runs/$arm"
    if [ -f "$run/report.json" ]; then
      echo "== $arm ($run): complete"
      continue
    fi
    read -r -a sets <<<"$(arm_sets "$arm" | tr '\n' ' ')"
    resume=()
    if [ -f "$run/run.json" ]; then
      # A resumed run keeps its configuration (run.json, config.yaml).
      resume=(--resume)
      sets=()
    else
      sets+=(--set "threads=$THREADS" --set "epochs=$EPOCHS" --set "patience=$PATIENCE" --set eval_every=1 --set checkpoint_every=1)
    fi
    echo "== $arm ($run) ${resume[*]} ${sets[*]}"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$run.load"
    GOMAXPROCS=$THREADS nice -n "$NICE" "${TIME[@]}" -o "$run.time" \
      "$MMPIPE" --log-format json train --model mmssl --dataset "$DATASET" "${split[@]}" --out "$run" \
      "${resume[@]}" "${sets[@]}" >"$run.out" 2>>"$run.log" ||
      { echo "failed: see $run.log"; tail -3 "$run.log"; }
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$run.load"
    tail -2 "$run.out"
  done
fi

if [[ " $STAGES " == *" speed "* ]]; then
  for t in $SPEED_THREADS; do
    run="$OUT/speed/go-t$t"
    rm -rf "$run"
    echo "== one faithful epoch, mmpipe, $t threads"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >"$run.load"
    GOMAXPROCS=$t nice -n "$NICE" "${TIME[@]}" -o "$run.time" \
      "$MMPIPE" --log-format json train --model mmssl --dataset "$DATASET" "${split[@]}" --out "$run" \
      --set "threads=$t" --set epochs=1 --set model.mode=faithful >"$run.out" 2>"$run.log" ||
      { echo "failed: see $run.log"; tail -3 "$run.log"; }
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$run.load"
    tj="$OUT/speed/torch-t$t"
    if [ "$TORCH" = 0 ]; then
      echo "TORCH=0: PyTorch timing skipped"
    elif [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; then
      # Debian's torch links libblas.so.3, the slow reference BLAS unless
      # OpenBLAS is installed: fetch Debian's OpenBLAS (apt-get download,
      # not installed) and put it first on this run's library path, as
      # bench/onnx/run.sh does.
      ob="$PWD/bench/out/train/openblas"
      lib="$ob/usr/lib/x86_64-linux-gnu/openblas-pthread"
      if [ ! -f "$lib/libblas.so.3" ] && command -v apt-get >/dev/null; then
        mkdir -p "$ob"
        (cd "$ob" && apt-get download -qq libopenblas0-pthread 2>/dev/null && dpkg-deb -x libopenblas0-pthread_*.deb .) ||
          echo "could not fetch OpenBLAS: PyTorch runs on the system BLAS" >&2
      fi
      [ -f "$lib/libblas.so.3" ] || lib=""
      echo "== one faithful epoch, PyTorch, $t threads (BLAS: ${lib:-system})"
      echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >"$tj.load"
      LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OPENBLAS_NUM_THREADS=$t nice -n "$NICE" "${TIME[@]}" -o "$tj.time" \
        "$PY" -W ignore bench/train/mmssl_torch.py --data "$DATA/tiktok" --threads "$t" --epochs 1 >"$tj.json" 2>"$tj.log" ||
        { echo "failed: see $tj.log"; tail -3 "$tj.log"; }
      echo "load: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$tj.load"
    else
      echo "python3-torch not installed: PyTorch timing skipped (apt-get install -y python3-torch)"
    fi
  done
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$OUT" "$EPOCHS" $ARMS <<'EOF' | tee "$OUT/summary.md"
import glob, json, os, re, statistics, sys
out, epochs, arms = sys.argv[1], sys.argv[2], sys.argv[3:]

def rss_mb(prefix, report=None):
    """Peak RSS: /usr/bin/time's (last invocation), else the report's."""
    try:
        m = re.search(r"(\d+) KB peak RSS", open(prefix + ".time").read())
        if m:
            return f"{int(m.group(1)) / 1024:.0f}"
    except OSError:
        pass
    return f"{report['peak_rss_bytes'] / 2**20:.0f}" if report and "peak_rss_bytes" in report else "–"

def load(prefix):
    try:
        return " → ".join(l.split(": ", 1)[1].split()[0] for l in open(prefix + ".load").read().splitlines())
    except (OSError, IndexError):
        return "–"

def epoch_lines(run):
    p = os.path.join(run, "metrics.jsonl")
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []

print(f"MMSSL on TikTok, fixed budget of {epochs} epochs per arm (test at the best validation Recall@20 epoch):")
print()
print("| arm | test Recall@20 | test NDCG@20 | test NDCG@20 (NGCF-style) | best epoch | valid Recall@20 by epoch | s/epoch (median) | CPU s/epoch | peak RSS MB | load (1-min) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for arm in arms:
    run = os.path.join(out, "runs", arm)
    lines = epoch_lines(run)
    curve = " ".join(f"{l['valid']['recall@20']:.4f}" for l in lines if "valid" in l)
    p = os.path.join(run, "report.json")
    if not os.path.exists(p):
        print(f"| {arm} | – | – | – | – | {curve or '–'} (incomplete) | – | – | {rss_mb(run)} | {load(run)} |")
        continue
    r = json.load(open(p))
    secs = [l["seconds"] for l in lines if "seconds" in l]
    cpu = [l["cpu_seconds"] for l in lines if "cpu_seconds" in l]
    print(f"| {arm} | {r['test'].get('recall@20', 0):.4f} | {r['test'].get('ndcg@20', 0):.4f} | {r['test'].get('ndcg_ngcf@20', float('nan')):.4f} | {r['best_epoch']} | {curve} | "
          f"{statistics.median(secs) if secs else r['epoch_seconds']:.1f} | {statistics.median(cpu) if cpu else r['epoch_cpu_seconds']:.1f} | "
          f"{rss_mb(run, r)} | {load(run)} |")

rows = []
for go in sorted(glob.glob(os.path.join(out, "speed", "go-t*"))):
    if not os.path.isdir(go):
        continue
    t = go.rsplit("-t", 1)[1]
    lines = epoch_lines(go)
    split = {}
    for l in open(go + ".log"):
        try:
            j = json.loads(l)
        except ValueError:
            continue
        if j.get("msg") == "mmssl epoch time":
            split = j
    if lines:
        l = lines[0]
        rows.append(f"| mmpipe | {t} | {l['seconds']:.1f} | {l['cpu_seconds']:.1f} | {split.get('critic_s', float('nan')):.1f} | "
                    f"{split.get('recommender_s', float('nan')):.1f} | {rss_mb(go)} | {load(go)} |")
    tj = os.path.join(out, "speed", f"torch-t{t}")
    try:
        e = json.load(open(tj + ".json"))["epochs"][0]
        rows.append(f"| PyTorch | {t} | {e['seconds']:.1f} | {e['cpu_seconds']:.1f} | {e['critic_seconds']:.1f} | "
                    f"{e['recommender_seconds']:.1f} | {rss_mb(tj)} | {load(tj)} |")
    except (OSError, ValueError, KeyError, IndexError):
        pass
if rows:
    print()
    print("One faithful training epoch (⌊train rows / 1024⌋ + 1 batches), mmpipe vs PyTorch CPU at the same number of threads:")
    print()
    print("| implementation | threads | wall s | CPU s | critic s | recommender s | peak RSS MB | load (1-min) before → after |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
EOF
