# Sourced by the bench/train scripts before they time PyTorch. Debian's
# python3-torch links libblas.so.3, which is the slow reference BLAS
# (≈ 1 GFLOP/s here) unless OpenBLAS is installed: a comparison against it
# flatters mmpipe 5× or more. This fetches Debian's OpenBLAS without
# installing it (apt-get download into bench/out/train/openblas, as
# bench/onnx/run.sh does) and sets TORCH_ENV to the environment a PyTorch
# run needs (LD_LIBRARY_PATH first on OpenBLAS; OPENBLAS_NUM_THREADS is set
# per run by the caller). TORCH_BLAS says which BLAS it is.
ob="$PWD/bench/out/train/openblas"
torch_blas_lib="$ob/usr/lib/x86_64-linux-gnu/openblas-pthread"
if [ ! -f "$torch_blas_lib/libblas.so.3" ] && command -v apt-get >/dev/null; then
  mkdir -p "$ob"
  (cd "$ob" && apt-get download -qq libopenblas0-pthread 2>/dev/null && dpkg-deb -x libopenblas0-pthread_*.deb .) ||
    echo "could not fetch OpenBLAS: PyTorch runs on the system BLAS (times not comparable)" >&2
fi
if [ -f "$torch_blas_lib/libblas.so.3" ]; then
  TORCH_ENV=(env "LD_LIBRARY_PATH=$torch_blas_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  TORCH_BLAS=openblas
else
  TORCH_ENV=(env)
  TORCH_BLAS=system
fi
