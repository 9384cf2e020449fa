#!/usr/bin/env bash
# ONNX Runtime encode benchmarks (BENCHMARKS.md, "Encode (ONNX Runtime)"):
#   1. a random-weight model of CLIP ViT-B/32's size and shape (generated in Go:
#      12 layers, width 768, patch 32, 50 tokens, ≈ 4.4 GMAC per image) through the
#      clip-vit-b32 preset: images/s and the fraction of this machine's peak FLOP/s;
#   2. torchvision's vit_b_32 exported by Debian's PyTorch, in the same ONNX Runtime
#      session settings, and PyTorch eager on the same shapes;
#   3. a MiniLM-L6-sized model through the sbert-minilm preset: sentences/s;
#   4. the peak: a 4096³ float32 GEMM in ONNX Runtime (MLAS) and PyTorch.
# Usage: bash bench/onnx/run.sh   (MMPIPE_BENCH_THREADS, MMPIPE_BENCH_BATCH, BENCHTIME)
# Needs `make ort`; the PyTorch figures need python3-torch python3-torchvision
# (Debian); without them those rows are skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s ort
out=bench/out
mkdir -p "$out"
threads=${MMPIPE_BENCH_THREADS:-$(nproc)}
batch=${MMPIPE_BENCH_BATCH:-32}
benchtime=${BENCHTIME:-5x}
export MMPIPE_BENCH_THREADS=$threads MMPIPE_BENCH_BATCH=$batch MMPIPE_REQUIRE_ORT=1

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "isa: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|avx512_vnni|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "onnxruntime: $(cat .ort/VERSION); threads $threads; batch $batch"
} | tee "$out/onnx-machine.txt"

torch_json="$out/onnx-torch.json"
rm -f "$torch_json"
if /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null; then
  # Debian's torch links libblas.so.3, which is the slow reference BLAS unless OpenBLAS is
  # installed; fetch Debian's OpenBLAS into bench/out (apt-get download, not installed) and
  # put it first on the library path of this run only.
  ob="$PWD/$out/openblas"
  if [ ! -f "$ob/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" ] && command -v apt-get >/dev/null; then
    rm -rf "$ob" && mkdir -p "$ob"
    (cd "$ob" && apt-get download -qq libopenblas0-pthread 2>/dev/null && dpkg-deb -x libopenblas0-pthread_*.deb .) ||
      echo "could not fetch OpenBLAS: PyTorch runs on the system BLAS" >&2
  fi
  blas=""
  if [ -f "$ob/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" ]; then
    blas="$ob/usr/lib/x86_64-linux-gnu/openblas-pthread"
    echo "pytorch blas: Debian OpenBLAS (libopenblas0-pthread), private copy" | tee -a "$out/onnx-machine.txt"
  fi
  LD_LIBRARY_PATH="$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OPENBLAS_NUM_THREADS=$threads \
    /usr/bin/python3 -W ignore bench/onnx/torch_ref.py --threads "$threads" --batch "$batch" \
    --vit-onnx "$PWD/$out/vit_b_32.onnx" | tee "$torch_json"
  export MMPIPE_BENCH_VIT_ONNX="$PWD/$out/vit_b_32.onnx"
else
  echo "python3-torch/torchvision not installed: skipping the PyTorch rows" >&2
fi

go test -run '^$' -bench 'PeakGEMM|CLIPViTB32|ExternalViT|MiniLML6' \
  -benchtime "$benchtime" -timeout 30m ./extract/onnx | tee "$out/onnx-go.txt"
go test -run '^$' -bench 'TokenizeWordPiece' ./extract/onnx | tee -a "$out/onnx-go.txt"

/usr/bin/python3 - "$out/onnx-go.txt" "$torch_json" <<'PY'
import json, re, sys
go = open(sys.argv[1]).read()
def metric(bench, unit):
    m = re.search(r"^%s-\d+\s+\d+\s+.*?([\d.]+) %s(\s|$)" % (bench, re.escape(unit)), go, re.M)
    return float(m.group(1)) if m else None
try:
    t = json.load(open(sys.argv[2]))
except (OSError, ValueError):
    t = {}
# Best-of-N figures throughout (the machine may be shared); the means are in onnx-go.txt.
vit, vitf = metric("BenchmarkCLIPViTB32", "best-images/s"), metric("BenchmarkCLIPViTB32", "best-GFLOP/s")
peak = max(x for x in [metric("BenchmarkPeakGEMM", "best-GFLOP/s"), metric("BenchmarkCLIPViTB32", "peak-GFLOP/s"),
                        t.get("gemm_gflops")] if x)
print("peak: best 4096^3 float32 GEMM %.1f GFLOP/s (ONNX Runtime alone %.1f, between the ViT batches %.1f; PyTorch %s)"
      % (peak, metric("BenchmarkPeakGEMM", "best-GFLOP/s"), metric("BenchmarkCLIPViTB32", "peak-GFLOP/s"),
         "%.1f" % t["gemm_gflops"] if t else "-"))
print("CLIP ViT-B/32-sized (Go-generated) through clip-vit-b32: %.2f images/s (mean %.2f), %.1f GFLOP/s = %.0f%% of the peak; "
      "median ratio to the GEMM run right after each batch: %.0f%%"
      % (vit, metric("BenchmarkCLIPViTB32", "images/s"), vitf, 100 * vitf / peak, 100 * metric("BenchmarkCLIPViTB32", "of-peak")))
ext = metric("BenchmarkExternalViT", "best-images/s")
if ext:
    print("torchvision vit_b_32 export in ONNX Runtime: %.2f images/s" % ext)
if t:
    print("PyTorch %s eager: vit_b_32 %.2f images/s; MiniLM-L6-sized %.1f sentences/s"
          % (t["torch"], t["vit_torch_ips"], t["minilm_torch_sps"]))
print("MiniLM-L6-sized through sbert-minilm: %.1f sentences/s (%.1f GFLOP/s); WordPiece tokenizer %.0f texts/s"
      % (metric("BenchmarkMiniLML6", "best-sentences/s"), metric("BenchmarkMiniLML6", "best-GFLOP/s"),
         metric("BenchmarkTokenizeWordPiece", "texts/s")))
print("load average after: " + " ".join(open("/proc/loadavg").read().split()[:3]))
PY
