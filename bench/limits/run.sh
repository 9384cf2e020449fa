#!/usr/bin/env bash
# Limits of issue 9: peak RSS per stage on generated data far past the shared
# sets, and on the shared sets. Figures go to BENCHMARKS.md (Limits).
#
#   bash bench/limits/run.sh [stage ...]
#
# (bash reads a script as it runs: to edit this file during a run, run a copy
# with ROOT=/path/to/repo bash /tmp/run.sh.)
#
# stages (default: all, in this order):
#   ingest50m  generate a 50 M-row Amazon 2018 ratings CSV (5 M users, 1 M items),
#              ingest it (default random split)
#   features   write a 2 M × 512 float32 feature file with store.WriteFeatures,
#              read it back memory-mapped (random sample, then every row)
#   lightgcn   generate 5 M interactions (500 k users, 600 k item ids, flattened
#              Zipf so ≈ 500 k items occur), ingest (random split), train
#              LightGCN for one epoch (batch_size 65536; it then evaluates the
#              valid and test parts: ≈ 500 k users × 507 k items each)
#   real       ingest ../shared/data/tiktok (mmrec) and amazon-baby (mmssl);
#              train pop / mf / lightgcn on TikTok for 5 epochs; the demo's
#              stages one process each (gen demo 10×, ingest, crawl --from-dir,
#              encode text-hash and image-stats, train 20 epochs), then the
#              whole `mmpipe demo`
#   mmssl      MMSSL on TikTok for 150 s (then SIGINT): its anonymous peak
#              against the critic's items² formula
#   tokens     a 50 k-item demo sample, `encode --encoder text-hash --tokens`:
#              50 tokens × 384 per item = 3.8 GB of token states, kept in a
#              file-backed scratch array (anonymous memory stays small)
#
# Each process runs under `nice -n 10` and /usr/bin/time -v; one line per
# process goes to $W/summary.txt: wall, peak RSS (maxrss: file-backed pages
# count too), user+sys CPU, RssAnon / RssFile maxima, load
# average at start and end. Big files go to
# $W (default /tmp/limits); delete it afterwards.
set -uo pipefail
cd "${ROOT:-$(dirname "$0")/../..}"
W=${W:-/tmp/limits}
NICE=${NICE:-nice -n 10}
mkdir -p "$W"
BIN=${BIN:-$W/mmpipe}
if [ ! -x "$BIN" ]; then make build && cp bin/mmpipe "$BIN"; fi
[ -x "$W/limits" ] || go build -o "$W/limits" ./bench/limits
[ -x "$W/gen" ] || go build -o "$W/gen" ./bench/gen
SHARED=${SHARED:-../shared/data}

# measure NAME CMD...: run CMD under time -v, log to $W/NAME.log, append a
# summary line. Besides maxrss (which counts file-backed pages: the binary,
# mapped inputs), the measured process's RssAnon and RssFile are sampled from
# /proc/PID/status every 0.5 s; their maxima are printed as anon/file.
measure() {
  local name=$1; shift
  local l0; l0=$(cut -d' ' -f1-3 /proc/loadavg)
  $NICE /usr/bin/time -v -o "$W/$name.time" "$@" > "$W/$name.log" 2>&1 &
  local tp=$! child="" anon=0 file=0 a f
  while kill -0 "$tp" 2>/dev/null; do
    # the deepest descendant (through nice/timeout) is the measured process
    [ -n "$child" ] || child=$(pgrep -P "$tp" | head -1)
    while [ -n "$child" ] && g=$(pgrep -P "$child" | head -1) && [ -n "$g" ]; do child=$g; done
    if [ -n "$child" ] && [ -r "/proc/$child/status" ]; then
      read -r a f < <(awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print a+0, f+0}' "/proc/$child/status" 2>/dev/null || echo 0 0)
      [ "${a:-0}" -gt "$anon" ] && anon=$a
      [ "${f:-0}" -gt "$file" ] && file=$f
    fi
    sleep 0.5
  done
  wait "$tp"; local rc=$?
  local l1; l1=$(cut -d' ' -f1-3 /proc/loadavg)
  local wall rss usr sys
  wall=$(awk -F': ' '/Elapsed/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$W/$name.time")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$W/$name.time")
  usr=$(awk -F': ' '/User time/ {print $2}' "$W/$name.time")
  sys=$(awk -F': ' '/System time/ {print $2}' "$W/$name.time")
  printf '%-22s rc=%d wall=%8.2fs peak_rss=%8.1fMB anon<=%8.1fMB file<=%8.1fMB cpu=%7.1fs load_start=[%s] load_end=[%s]\n' \
    "$name" "$rc" "$wall" "$(echo "$rss/1024" | bc -l)" "$(echo "$anon/1024" | bc -l)" "$(echo "$file/1024" | bc -l)" \
    "$(echo "$usr+$sys" | bc -l)" "$l0" "$l1" | tee -a "$W/summary.txt"
  return $rc
}

stage_ingest50m() {
  [ -s "$W/r50m.csv" ] || $NICE "$W/gen" ratings --rows 50000000 --users 5000000 --items 1000000 --out "$W/r50m.csv"
  rm -rf "$W/ds50m"
  measure ingest50m "$BIN" --result-file "$W/ingest50m.json" ingest --format amazon2018 --input "$W/r50m.csv" --out "$W/ds50m"
  du -sh "$W/r50m.csv" "$W/ds50m" | tee -a "$W/summary.txt"
}

stage_features() {
  rm -f "$W/feat2m.arrow"
  measure feat-write "$W/limits" write --rows 2000000 --dim 512 --out "$W/feat2m.arrow"
  measure feat-read "$W/limits" read --in "$W/feat2m.arrow" --sample 100000
  measure feat-read-sample "$W/limits" read --in "$W/feat2m.arrow" --sample 100000 --all=false
  measure feat-read-1k "$W/limits" read --in "$W/feat2m.arrow" --sample 1000 --all=false
  grep -E 'RssAnon|wrote|pass|sample' "$W"/feat-*.log | tee -a "$W/summary.txt"
}

stage_lightgcn() {
  [ -s "$W/r5m.csv" ] || $NICE "$W/gen" ratings --rows 5000000 --users 500000 --items 600000 --zipf-v 1000 --out "$W/r5m.csv"
  [ -s "$W/ds5m/manifest.json" ] || measure ingest5m "$BIN" ingest --format amazon2018 --input "$W/r5m.csv" --out "$W/ds5m" --split random
  rm -rf "$W/run-lgcn5m"
  # LightGCN propagates the whole graph at every batch: with the default
  # batch_size 2048 an epoch is 1895 batches (≈ 7 s each on the loaded
  # machine, ≈ 3.7 h); 65536 gives 60 batches, the same memory bar the batch.
  measure lightgcn5m "$BIN" train --model lightgcn --dataset "$W/ds5m" --out "$W/run-lgcn5m" \
    --set epochs=1 --set model.batch_size=65536
  grep -E '"(peak_rss_bytes|epoch_seconds|eval_seconds|train_seconds)"' -r "$W/run-lgcn5m"/*.json | head -20 | tee -a "$W/summary.txt"
}

stage_real() {
  rm -rf "$W/tiktok" "$W/baby" "$W/demo-raw" "$W/demo" "$W"/run-tt-*
  measure ingest-tiktok "$BIN" ingest --format mmrec --input "$SHARED/tiktok" --out "$W/tiktok"
  measure ingest-baby "$BIN" ingest --format mmssl --input "$SHARED/amazon-baby" --out "$W/baby"
  for m in pop mf lightgcn; do
    measure "train-tiktok-$m" "$BIN" train --model "$m" --dataset "$W/tiktok" --out "$W/run-tt-$m" --set epochs=5
  done
  stage_demo
}

# MMSSL on TikTok (6710 items) for 150 s, then SIGINT: the critic is
# allocated at start and its I × H1 scratch buffer in the first batch, so the
# anonymous peak of a short run checks the items² formula in BENCHMARKS.md (Limits)
# (an epoch takes ≈ 560 s on the loaded machine).
stage_mmssl() {
  [ -s "$W/tiktok/manifest.json" ] || measure ingest-tiktok "$BIN" ingest --format mmrec --input "$SHARED/tiktok" --out "$W/tiktok"
  rm -rf "$W/run-tt-mmssl"
  measure mmssl-tiktok-150s timeout -s INT 150 "$BIN" train --model mmssl --dataset "$W/tiktok" --out "$W/run-tt-mmssl" --set epochs=1
}

# The demo's stages one process each, on a demo sample 10× the default
# (6000 users, 4000 items), plus the whole `mmpipe demo` at its default size.
stage_demo() {
  local raw=$W/demo-raw ds=$W/demo
  rm -rf "$raw" "$ds" "$W/demo-whole"
  measure demo-gen "$W/gen" demo --out "$raw" --users 6000 --items 4000
  measure demo-ingest "$BIN" ingest --format amazon2018 --input "$raw/Demo_Products.json.gz" \
    --input "$raw/meta_Demo_Products.json.gz" --out "$ds" --split random
  measure demo-crawl "$BIN" crawl --dataset "$ds" --from-dir "$raw/images"
  measure demo-encode-text "$BIN" encode --dataset "$ds" --encoder text-hash
  measure demo-encode-image "$BIN" encode --dataset "$ds" --encoder image-stats
  for m in pop mf lightgcn; do
    measure "demo-train-$m" "$BIN" train --model "$m" --dataset "$ds" --out "$W/run-demo-$m" --set epochs=20
  done
  measure demo-whole "$BIN" demo --out "$W/demo-whole"
}

# Token states far larger than the heap should hold: 50,000 items × 50 tokens
# × 384 float32 = 3.84 GB, which encode keeps in a file-backed scratch array.
stage_tokens() {
  local raw=$W/tok-raw ds=$W/tok
  [ -s "$raw/meta_Demo_Products.json.gz" ] || $NICE "$W/gen" demo --out "$raw" --users 20000 --items 50000
  rm -rf "$ds"
  measure tok-ingest "$BIN" ingest --format amazon2018 --input "$raw/Demo_Products.json.gz" \
    --input "$raw/meta_Demo_Products.json.gz" --out "$ds" --split random
  measure tok-encode "$BIN" encode --dataset "$ds" --encoder text-hash --tokens
  ls -l "$ds/features" | tee -a "$W/summary.txt"
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(ingest50m features lightgcn real mmssl)
for s in "${stages[@]}"; do "stage_$s"; done
