#!/usr/bin/env bash
# Encode benchmarks (figures go to BENCHMARKS.md, section "Encode"):
#  1. image decode + resize + crop + normalise of 640x480 JPEGs (quality 90),
#     Go (package extract/vision) against Python Pillow + numpy on the same
#     files, one core and all cores, CLIP and PMMRec recipes; prints the ratios;
#  2. built-in encoder throughput: image-stats on the same JPEGs, text-hash on
#     generated product-like texts;
#  3. the encode stage end to end on the demo dataset (4000 items).
# Needs /usr/bin/python3 with Pillow and numpy (apt-get install python3-pil
# python3-numpy). SECONDS_PER_RUN=2 bash bench/encode/run.sh for a quick run.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/out/encode}
N=${N:-200}
S=${SECONDS_PER_RUN:-5}
CORES=$(nproc)
mkdir -p "$OUT"
go build -o "$OUT/encode-bench" ./bench/encode
if [ ! -f "$OUT/images/img$(printf %04d $((N - 1))).jpg" ]; then
  "$OUT/encode-bench" gen --out "$OUT/images" --n "$N"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
PY=${MMPIPE_PYTHON:-/usr/bin/python3}
if ! $PY -c 'import PIL, numpy' 2>/dev/null; then
  echo "python3-pil / python3-numpy missing: apt-get install -y python3-pil python3-numpy" >&2
  exit 1
fi
for recipe in clip pmmrec; do
  for w in 1 "$CORES"; do
    g=$("$OUT/encode-bench" preprocess --dir "$OUT/images" --recipe "$recipe" --workers "$w" --seconds "$S")
    p=$($PY bench/encode/pil_preprocess.py "$OUT/images" --recipe "$recipe" --procs "$w" --seconds "$S")
    echo "$g"
    echo "$p"
    gw=$(echo "$g" | sed -E 's/.*: ([0-9.]+) \/s wall.*/\1/'); gc=$(echo "$g" | sed -E 's/.*, ([0-9.]+) per cpu-s.*/\1/')
    pw=$(echo "$p" | sed -E 's/.*: ([0-9.]+) \/s wall.*/\1/'); pc=$(echo "$p" | sed -E 's/.*, ([0-9.]+) per cpu-s.*/\1/')
    awk -v gw="$gw" -v gc="$gc" -v pw="$pw" -v pc="$pc" -v r="$recipe" -v w="$w" \
      'BEGIN { printf "ratio go/python recipe=%s workers=%s: %.2f wall, %.2f per cpu-s\n", r, w, gw/pw, gc/pc }'
  done
done
for w in 1 "$CORES"; do
  "$OUT/encode-bench" builtin --dir "$OUT/images" --workers "$w" --seconds "$S"
done
# The stage end to end on the demo's dataset (small drawn images, texts).
[ -x bin/mmpipe ] || make build
rm -rf "$OUT/demo"
bin/mmpipe --log-level warn demo --out "$OUT/demo" --users 3000 --items 4000 > "$OUT/demo.log"
for enc in text-hash image-stats; do
  bin/mmpipe --log-level warn --result-file "$OUT/encode-$enc.json" encode --dataset "$OUT/demo/dataset" --encoder "$enc" \
    --images "$OUT/demo/raw/images" --force > /dev/null
  $PY -c "import json,sys; r=json.load(open(sys.argv[1]))['encode']; print('stage %s: %d items encoded, %.0f items/s, %.2f s in all' % (r['encoder'], r['encoded'], r['items_per_second'], r['seconds']))" "$OUT/encode-$enc.json"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
