#!/usr/bin/env python3
"""PyTorch CPU SASRec with the same model, data, windows and length buckets as
mmpipe's `sasrec` (train/models/sasrec), for a side-by-side epoch-time
comparison. Not a dependency of mmpipe: Debian's python3-torch is enough.

Model: RecBole's SASRec (post-LN blocks, GELU, additive -10000 mask, LayerNorm
eps 1e-12, dropout 0.5 on hidden states and attention weights), item embedding
row 0 = padding, full-softmax cross-entropy at every non-padding position,
Adam lr 1e-3.  Data: a RecBole sequence-file directory (<name>.train.inter
with one row per prefix); each user's training sequence is rebuilt from its
longest prefix row plus that row's target, then cut into windows of at most
max_len inputs from the most recent end, grouped into length buckets of
len_bucket, batches of batch_size windows, targets padded to a quarter of
batch*len (as mmpipe does, so both run the same tensor shapes).

  python3 bench/train/sasrec_torch.py ../shared/data/amazon-scientific --epochs 3 --threads 2
Prints one JSON line per epoch: {"epoch", "seconds", "cpu_seconds", "steps", "loss", "ms_per_step"}.
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


def read_sequences(d):
    path = glob.glob(os.path.join(d, "*.train.inter"))[0]
    longest = {}
    with open(path) as f:
        next(f)
        for line in f:
            u, hist, tgt = line.rstrip("\n").split("\t")
            h = hist.split(" ") if hist else []
            if u not in longest or len(h) >= len(longest[u]) - 1:
                longest[u] = h + [tgt]
    items = {}
    seqs = []
    for u in sorted(longest):
        seqs.append([items.setdefault(i, len(items)) for i in longest[u]])
    return seqs, len(items)


def windows(seqs, max_len):
    out = []
    for u, s in enumerate(seqs):
        end = len(s)
        while end > 1:
            st = max(0, end - 1 - max_len)
            out.append((u, st, end - 1 - st))
            end = st + 1
    return out


class SASRec(nn.Module):
    def __init__(self, n_items, d=64, layers=2, heads=2, inner=256, drop=0.5, max_len=50, eps=1e-12):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, d)
        self.pos = nn.Embedding(max_len, d)
        self.ln = nn.LayerNorm(d, eps=eps)
        self.drop = nn.Dropout(drop)
        self.heads = heads
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict(dict(
                q=nn.Linear(d, d), k=nn.Linear(d, d), v=nn.Linear(d, d), o=nn.Linear(d, d),
                ln1=nn.LayerNorm(d, eps=eps), f1=nn.Linear(d, inner), f2=nn.Linear(inner, d),
                ln2=nn.LayerNorm(d, eps=eps), ad=nn.Dropout(drop), hd=nn.Dropout(drop), fd=nn.Dropout(drop))))
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.data.normal_(0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.data.zero_()

    def forward(self, seq):
        B, L = seq.shape
        d = self.item.embedding_dim
        H = self.heads
        x = self.drop(self.ln(self.item(seq) + self.pos.weight[:L].unsqueeze(0)))
        causal = torch.tril(torch.ones(L, L, dtype=torch.bool))
        allowed = causal.unsqueeze(0) & (seq > 0).unsqueeze(1)
        bias = (~allowed).float().mul(-10000.0).unsqueeze(1)
        for b in self.blocks:
            def split(t):
                return t.view(B, L, H, d // H).transpose(1, 2)
            q, k, v = split(b["q"](x)), split(b["k"](x)), split(b["v"](x))
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // H) + bias, -1)
            ctx = (b["ad"](p) @ v).transpose(1, 2).reshape(B, L, d)
            x = b["ln1"](b["hd"](b["o"](ctx)) + x)
            x = b["ln2"](b["fd"](b["f2"](F.gelu(b["f1"](x)))) + x)
        return x.reshape(B * L, d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--len-bucket", type=int, default=10)
    ap.add_argument("--seed", type=int, default=2023)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rnd = random.Random(a.seed)
    seqs, n_items = read_sequences(a.data)
    ws = windows(seqs, a.max_len)
    buckets = {}
    for w in ws:
        L = min(a.max_len, (w[2] + a.len_bucket - 1) // a.len_bucket * a.len_bucket)
        buckets.setdefault(L, []).append(w)
    model = SASRec(n_items, max_len=a.max_len)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    B = a.batch
    for ep in range(1, a.epochs + 1):
        plan = []
        for L, members in sorted(buckets.items()):
            m = members[:]
            rnd.shuffle(m)
            plan += [(L, m[i:i + B]) for i in range(0, len(m), B)]
        rnd.shuffle(plan)
        t0, c0, tot = time.perf_counter(), time.process_time(), 0.0
        model.train()
        for L, batch in plan:
            seq = torch.zeros(B, L, dtype=torch.long)
            pos, tgt = [], []
            for r, (u, st, n) in enumerate(batch):
                s = seqs[u][st:st + n + 1]
                seq[r, :n] = torch.tensor(s[:n]) + 1
                pos += [r * L + t for t in range(n)]
                tgt += s[1:n + 1]
            q = max(1, B * L // 4)
            n = (len(pos) + q - 1) // q * q
            w = torch.zeros(n)
            w[:len(pos)] = 1
            pos += [0] * (n - len(pos))
            tgt += [0] * (n - len(tgt))
            h = model(seq)[torch.tensor(pos)]
            logits = h @ model.item.weight[1:].t()
            loss = (F.cross_entropy(logits, torch.tensor(tgt), reduction="none") * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(json.dumps(dict(epoch=ep, seconds=round(sec, 3), cpu_seconds=round(cpu, 3), steps=len(plan), loss=round(tot / len(plan), 4),
                              ms_per_step=round(1000 * sec / len(plan), 1), threads=a.threads)), flush=True)


if __name__ == "__main__":
    main()
