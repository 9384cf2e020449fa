#!/usr/bin/env python3
"""PyTorch CPU MISSRec fine-tuning step with the same network, sizes, rows and
length buckets as mmpipe's `missrec` (train/models/missrec, stage=finetune), for
a side-by-side epoch-time comparison. Not a dependency of mmpipe: Debian's
python3-torch is enough (no numpy/pyarrow needed).

Network (the reference's MISSRec, research/models.md §3.5): text (and image)
adaptors Linear(feat_dim -> d) summed per position, + positions (+ item-ID
embedding in transductive mode), LayerNorm + dropout; nn.Transformer with one
post-LN encoder layer over the sequence's sorted unique interest ids and one
decoder layer over the items (bidirectional, key-padding masks), final
LayerNorms; s = normalised output at the last position; scores = fused
per-modality cosines (softmax(f·cosines) weights, f learnable) averaged 1:2 with
the ID cosine in transductive mode, / 0.07; full-softmax cross-entropy over all
items (PAD included) + 1e-4 · interest regulariser; Adam lr 1e-3. Before every
epoch the adaptor outputs of all items are clustered into ceil(0.5 · tokens)
interests (one-pass mini-batch k-means, as the reference executes it).

Data: the RecBole prefix rows of <name>.train.inter (one row = history ≤ max_len
+ target), grouped into length buckets of len_bucket, batches of batch rows
(as mmpipe). Item features: the timing does not depend on their values, so
this script draws random feat_dim-d vectors (384 = mmpipe's text-hash; 512 =
CLIP) instead of reading mmpipe's Arrow feature files.

  python3 bench/train/missrec_torch.py ../shared/data/amazon-scientific --epochs 1 --threads 2
Prints one JSON line per epoch: {"epoch", "seconds", "cluster_seconds", "cpu_seconds", "steps", "loss", "ms_per_step"}.
"""
import argparse
import glob
import json
import math
import os
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_rows(d, max_len):
    path = glob.glob(os.path.join(d, "*.train.inter"))[0]
    items, rows = {}, []
    with open(path) as f:
        next(f)
        for line in f:
            _, hist, tgt = line.rstrip("\n").split("\t")
            h = [items.setdefault(i, len(items)) for i in (hist.split(" ") if hist else [])][-max_len:]
            rows.append((h, items.setdefault(tgt, len(items))))
    return rows, len(items)


def kmeans_once(x, k, batch, gen):
    """The reference's one-pass mini-batch k-means (plain means, Euclidean)."""
    n = x.shape[0]
    if batch <= k:
        batch = int(1.1 * k)
    cent, counts, ptr = None, torch.ones(k), 0
    while ptr < n:
        end = n if n - ptr - batch <= k else ptr + batch
        xb = x[ptr:end]
        if cent is None:
            cent = xb[torch.randperm(xb.shape[0], generator=gen)[:k]].clone()
        lab = torch.cdist(xb, cent).argmin(1)
        cnt = torch.bincount(lab, minlength=k).float()
        delta = torch.zeros_like(cent).index_add_(0, lab, xb) / cnt.clamp(min=1).unsqueeze(1)
        w = (1 / counts).unsqueeze(1)
        cent = cent * (1 - w) + delta * w
        counts += cnt
        ptr = end
    return torch.cat([torch.cdist(x[i:i + 4096], cent).argmin(1) for i in range(0, n, 4096)]), cent


class MISSRec(nn.Module):
    def __init__(self, n_items, dims, d=300, heads=4, inner=256, drop=0.5, max_len=50, transductive=True, eps=1e-12):
        super().__init__()
        self.adaptors = nn.ModuleList([nn.Linear(f, d) for f in dims])  # PyTorch default init, as the reference
        self.pos = nn.Embedding(max_len, d)
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0) if transductive else None
        self.ln = nn.LayerNorm(d, eps=eps)
        self.drop = nn.Dropout(drop)
        self.trm = nn.Transformer(d_model=d, nhead=heads, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=inner,
                                  dropout=drop, activation="gelu", layer_norm_eps=eps, batch_first=True)
        self.fusion = nn.Parameter(torch.zeros(()))
        for m in [self.pos, self.item] + [mod for mod in self.trm.modules() if isinstance(mod, nn.Linear)]:
            if m is not None:
                m.weight.data.normal_(0, 0.02)
                if getattr(m, "bias", None) is not None:
                    m.bias.data.zero_()

    def forward(self, feats, seq, last, interest, ids):
        B, L = seq.shape
        outs = [a(f) for a, f in zip(self.adaptors, feats)]  # [items+1, d] each
        x = sum(o[seq] for o in outs) + self.pos.weight[:L].unsqueeze(0)
        if self.item is not None:
            x = x + self.item(seq)
        x = self.drop(self.ln(x))
        mem_pad = ids == 0
        mem = self.trm.encoder(interest, src_key_padding_mask=mem_pad)
        w = (~mem_pad).float().mean(1, keepdim=True).unsqueeze(-1)
        reg = ((mem * w).sum(1) ** 2).sum() / mem.shape[-1]
        h = self.trm.decoder(x, mem, tgt_key_padding_mask=seq == 0, memory_key_padding_mask=mem_pad)
        s = F.normalize(h[torch.arange(B), last], dim=1)
        cos = [s @ F.normalize(o, dim=1).t() for o in outs]
        if len(cos) == 2:
            wt = torch.sigmoid(self.fusion * (cos[0] - cos[1]))
            fused = cos[1] + wt * (cos[0] - cos[1])
        else:
            fused = cos[0]
        if self.item is not None:
            fused = (s @ F.normalize(self.item.weight, dim=1).t() + 2 * fused) / 3
        return fused / 0.07, reg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--len-bucket", type=int, default=10)
    ap.add_argument("--text-dim", type=int, default=384)
    ap.add_argument("--image-dim", type=int, default=0, help="0: text only (amazon-office/scientific have no images)")
    ap.add_argument("--mode", choices=["transductive", "inductive"], default="transductive")
    ap.add_argument("--interest-ratio", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=2023)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    rnd = random.Random(a.seed)
    rows, n_items = read_rows(a.data, a.max_len)
    dims = [a.text_dim] + ([a.image_dim] if a.image_dim > 0 else [])
    feats = []
    for f in dims:
        t = torch.randn(n_items + 1, f, generator=gen)
        t[0] = 0
        feats.append(t)
    buckets = {}
    for r in rows:
        L = min(a.max_len, max(a.len_bucket, (len(r[0]) + a.len_bucket - 1) // a.len_bucket * a.len_bucket))
        buckets.setdefault(L, []).append(r)
    model = MISSRec(n_items, dims, d=a.dim, max_len=a.max_len, transductive=a.mode == "transductive")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    K = max(math.ceil(len(dims) * n_items * a.interest_ratio), 1)
    B = a.batch
    for ep in range(1, a.epochs + 1):
        t0, c0, tot = time.perf_counter(), time.process_time(), 0.0
        with torch.no_grad():
            model.eval()
            toks = torch.cat([ad(f[1:]) for ad, f in zip(model.adaptors, feats)])
            lab, cent = kmeans_once(toks, K, 2048, gen)
            look = [torch.cat([torch.zeros(1, dtype=torch.long), lab[k * n_items:(k + 1) * n_items] + 1]) for k in range(len(dims))]
            table = torch.cat([torch.zeros(1, a.dim), cent])
        t_cluster = time.perf_counter() - t0
        plan = []
        for L, members in sorted(buckets.items()):
            m = members[:]
            rnd.shuffle(m)
            plan += [(L, m[i:i + B]) for i in range(0, len(m), B)]
        rnd.shuffle(plan)
        model.train()
        for L, batch in plan:
            seq = torch.zeros(B, L, dtype=torch.long)
            last, tgt = torch.zeros(B, dtype=torch.long), torch.zeros(B, dtype=torch.long)
            wrow = torch.zeros(B)
            seq[len(batch):, 0] = 1  # padding rows (weight 0) read one item: a fully masked row would give NaN
            for r, (h, t) in enumerate(batch):
                seq[r, :len(h)] = torch.tensor(h) + 1
                last[r], tgt[r], wrow[r] = max(len(h) - 1, 0), t + 1, 1
            allids = torch.cat([lk[seq] for lk in look], 1).sort(1).values
            allids[:, 1:][allids[:, 1:] == allids[:, :-1]] = 0  # unique per row (0 = padding)
            allids = allids.sort(1, descending=True).values
            nq = int((allids > 0).sum(1).max()) + int((allids == 0).any())
            ids = allids[:, :max(nq, 1)]
            logits, reg = model(feats, seq, last, table[ids], ids)
            loss = (F.cross_entropy(logits, tgt, reduction="none") * wrow).sum() / wrow.sum() + 1e-4 * reg
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(json.dumps(dict(epoch=ep, seconds=round(sec, 3), cluster_seconds=round(t_cluster, 3), cpu_seconds=round(cpu, 3),
                              steps=len(plan), loss=round(tot / len(plan), 4), ms_per_step=round(1000 * sec / len(plan), 1),
                              threads=a.threads, mode=a.mode, dim=a.dim, batch=B)), flush=True)


if __name__ == "__main__":
    main()
