#!/usr/bin/env python3
"""PyTorch reference figures for the ONNX Runtime encode benchmarks.

Uses Debian's python3-torch / python3-torchvision (apt-get install python3-torch
python3-torchvision); nothing is downloaded. Prints one JSON object:

  gemm_gflops        float32 4096x4096x4096 matmul in PyTorch (the machine's attainable peak)
  vit_torch_ips      torchvision vit_b_32 (random weights) eager images/s at the batch size
  minilm_torch_sps   a MiniLM-L6-sized nn.TransformerEncoder eager sentences/s
and, with --vit-onnx PATH, exports torchvision's vit_b_32 there (input pixel_values,
dynamic batch) for the Go benchmark BenchmarkExternalViT. (Debian's numpy links the
reference BLAS, far from the peak, so it is not used for the GEMM.)
"""
import argparse
import json
import time

import torch
import torchvision


def best_rate(fn, work, repeat):
    fn()  # warm-up
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = max(best, work / (time.perf_counter() - t))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--vit-onnx", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    res = {"torch": torch.__version__, "threads": args.threads, "batch": args.batch}

    n = 4096
    a, b = torch.randn(n, n), torch.randn(n, n)
    res["gemm_gflops"] = best_rate(lambda: torch.mm(a, b), 2 * n**3 / 1e9, 5)

    vit = torchvision.models.vit_b_32(weights=None).eval()
    x = torch.randn(args.batch, 3, 224, 224)
    with torch.inference_mode():
        res["vit_torch_ips"] = best_rate(lambda: vit(x), args.batch, 3)
    if args.vit_onnx:
        torch.onnx.export(vit, torch.randn(1, 3, 224, 224), args.vit_onnx, input_names=["pixel_values"],
                          output_names=["logits"], dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=14)

    # all-MiniLM-L6-v2's shape: 6 layers, width 384, 12 heads, FFN 1536, GELU, post-LN;
    # texts of 22 tokens (what the Go benchmark's item titles average).
    layer = torch.nn.TransformerEncoderLayer(384, 12, dim_feedforward=1536, dropout=0.0, activation="gelu",
                                             batch_first=True)
    enc = torch.nn.TransformerEncoder(layer, 6).eval()
    emb = torch.nn.Embedding(30522, 384)
    ids = torch.randint(0, 30522, (args.batch, 22))
    with torch.inference_mode():
        res["minilm_torch_sps"] = best_rate(lambda: enc(emb(ids)).mean(1), args.batch, 5)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
