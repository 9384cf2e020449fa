#!/usr/bin/env bash
# Ingest benchmark: a generated Amazon 2018 ratings CSV (default 10 M rows,
# 1 M users, 200 k items, Zipf item popularity, 10-character ids) ingested to
# Parquet without k-core. Prints rows/s and peak RSS; the figures go to
# BENCHMARKS.md. ROWS=1000000 bash bench/ingest.sh for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-10000000}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
csv="$OUT/Bench_Ratings_${ROWS}.csv"
if [ ! -s "$csv" ]; then
  go run ./bench/gen ratings --rows "$ROWS" --out "$csv"
fi
[ -x bin/mmpipe ] || make build
ls -l "$csv"
for split in none random; do
  rm -rf "$OUT/ds-$split"
  /usr/bin/time -f '%e s wall, %M KB peak RSS, %U s user, %S s sys' -o "$OUT/time-$split.txt" \
    bin/mmpipe --log-format json --result-file "$OUT/result-$split.json" ingest --format amazon2018 \
    --input "$csv" --out "$OUT/ds-$split" --split "$split" > "$OUT/ingest-$split.log" 2>&1
  read -r wall _ _ rss _ _ _ user _ _ sys _ < "$OUT/time-$split.txt"
  awk -v rows="$ROWS" -v wall="$wall" -v rss="$rss" -v sp="$split" -v cpu="$user+$sys" 'BEGIN {
    split(cpu, c, "+"); printf "split=%-7s rows=%d wall=%.2fs rate=%.2f M rows/s cpu=%.1fs peak_rss=%.0f MB\n", sp, rows, wall, rows/wall/1e6, c[1]+c[2], rss/1024 }'
done
