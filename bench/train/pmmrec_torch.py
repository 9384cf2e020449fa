#!/usr/bin/env python3
"""PyTorch CPU PMMRec with the same trainable network, batches and shapes as
mmpipe's `pmmrec` (train/models/pmmrec), for a side-by-side epoch-time
comparison. Not a dependency of mmpipe: Debian's python3-torch is enough.

Network (research/models.md §4, backbones frozen): per-token projections
(Linear in->dim, Xavier-normal, zero bias); tower "modal": one BERT-style
post-LN layer over the concatenated text and image tokens (additive -10000
mask for padded tokens, fusion_heads heads, FFN 4*dim exact GELU, LayerNorm
eps 1e-12, N(0, 0.02) init) then the masked mean; tower "text": masked mean
of the projected text tokens. SASRec user encoder: learned positions,
LayerNorm eps 1e-6, dropout, `blocks` blocks of `heads`-head attention
without biases (causal and key-valid mask, -1e9), ReLU FFN 4*dim, post-LN.
Fine-tuning loss of §4.6: in-batch logits over the B*21 slots minus log
popularity, padding and the user's own items (except the target) set to
-1e4, cross-entropy over the real input positions. AdamW lr 1e-4 wd 0.1.

Data: a RecBole sequence-file directory (<name>.train.inter, one row per
prefix); each user's training sequence is its longest prefix plus target;
samples are the last max_seq_len+1 items of users with >= 2 items, 32 users
per batch, the batch's distinct items encoded once (as mmpipe does).

Token states: with --text-tokens/--image-tokens FILE.tokens.arrow and
pyarrow installed, the files mmpipe encode --tokens wrote (rows = mmpipe
item index, which for a RecBole ingest follows first appearance: we map
items by their order in the .item2index/ids file when given, else assume
first-appearance order). Without pyarrow, random token states of the same
shape (--tokens T --width D per item, all T slots used) -- the epoch time
depends on the shapes only.

  python3 bench/train/pmmrec_torch.py ../shared/data/amazon-office --epochs 1 --threads 2 --dim 128 --fusion-heads 2 --tower text
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


def load_tokens(path, n_items, T, width, max_tokens, seed):
    """Returns (tokens [I+1, T, D] float32, mask [I+1, T]) with row 0 = padding."""
    if path:
        try:
            import pyarrow.ipc as ipc
            tab = ipc.open_file(path).read_all()
            meta = tab.schema.metadata
            T0, D = int(meta[b"tokens"]), int(meta[b"dim"])
            T = min(T0, max_tokens)
            vec = tab.column("vector").combine_chunks()
            flat = torch.tensor(vec.flatten().to_numpy(zero_copy_only=False)).view(-1, T0, D)[:, :T]
            n = torch.tensor(tab.column("n_tokens").to_numpy()).clamp(max=T)
            tok = torch.zeros(flat.shape[0] + 1, T, D)
            tok[1:] = flat
            mask = torch.zeros(flat.shape[0] + 1, T)
            mask[1:] = (torch.arange(T)[None, :] < n[:, None]).float()
            return tok, mask
        except ImportError:
            pass
    g = torch.Generator().manual_seed(seed)
    tok = torch.randn(n_items + 1, T, width, generator=g)
    tok[0] = 0
    mask = torch.ones(n_items + 1, T)
    mask[0] = 0
    return tok, mask


def xavier(m):
    nn.init.xavier_normal_(m.weight)
    if getattr(m, "bias", None) is not None:
        nn.init.zeros_(m.bias)


class Fusion(nn.Module):
    """One BERT layer (post-LN) over [U, T, d] with an additive -10000 mask."""

    def __init__(self, d, heads, drop):
        super().__init__()
        self.h = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
        self.w1, self.w2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.drop = nn.Dropout(drop)
        for m in (self.q, self.k, self.v, self.o, self.w1, self.w2):
            nn.init.normal_(m.weight, 0, 0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x, mask):
        U, T, d = x.shape
        dh = d // self.h
        q = self.q(x).view(U, T, self.h, dh).transpose(1, 2)
        k = self.k(x).view(U, T, self.h, dh).transpose(1, 2)
        v = self.v(x).view(U, T, self.h, dh).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + ((mask - 1) * 10000)[:, None, None, :]
        a = self.drop(torch.softmax(s, -1))
        c = (a @ v).transpose(1, 2).reshape(U, T, d)
        x = self.ln1(x + self.drop(self.o(c)))
        return self.ln2(x + self.drop(self.w2(F.gelu(self.w1(x)))))


class Block(nn.Module):
    def __init__(self, d, heads, drop):
        super().__init__()
        self.h = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-6), nn.LayerNorm(d, eps=1e-6)
        self.w1, self.w2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.drop = nn.Dropout(drop)
        for m in (self.q, self.k, self.v, self.o, self.w1, self.w2):
            xavier(m)

    def forward(self, x, bias):
        B, L, d = x.shape
        dh = d // self.h
        q = self.q(x).view(B, L, self.h, dh).transpose(1, 2)
        k = self.k(x).view(B, L, self.h, dh).transpose(1, 2)
        v = self.v(x).view(B, L, self.h, dh).transpose(1, 2)
        a = self.drop(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + bias[:, None], -1))
        x = self.ln1(x + self.drop(self.o((a @ v).transpose(1, 2).reshape(B, L, d))))
        return self.ln2(x + self.drop(self.w2(F.relu(self.w1(x)))))


class PMMRec(nn.Module):
    def __init__(self, a, dT, dV):
        super().__init__()
        d = a.dim
        self.tower = a.tower
        self.text_proj = nn.Linear(dT, d)
        xavier(self.text_proj)
        if a.tower == "modal":
            self.image_proj = nn.Linear(dV, d)
            xavier(self.image_proj)
            self.fusion = Fusion(d, a.fusion_heads, a.dropout)
        self.pos = nn.Embedding(a.max_seq_len, d)
        nn.init.xavier_normal_(self.pos.weight)
        self.ln = nn.LayerNorm(d, eps=1e-6)
        self.drop = nn.Dropout(a.dropout)
        self.blocks = nn.ModuleList(Block(d, a.heads, a.dropout) for _ in range(a.blocks))

    def items(self, tt, mt, tv, mv):
        xt = self.text_proj(tt)
        if self.tower == "text":
            return (xt * mt[..., None]).sum(1) / mt.sum(1, keepdim=True).clamp(min=1)
        x = torch.cat([xt, self.image_proj(tv)], 1)
        m = torch.cat([mt, mv], 1)
        h = self.fusion(x, m)
        return (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)

    def users(self, x, bias):
        h = self.drop(self.ln(x + self.pos.weight[None]))
        for b in self.blocks:
            h = b(h, bias)
        return h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tower", default="text", choices=["text", "modal"])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--fusion-heads", type=int, default=12)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--max-seq-len", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--text-tokens", default="")
    ap.add_argument("--image-tokens", default="")
    ap.add_argument("--tokens", type=int, default=50, help="token slots per item when generating")
    ap.add_argument("--width", type=int, default=384, help="token width when generating")
    ap.add_argument("--max-tokens", type=int, default=50)
    ap.add_argument("--max-steps", type=int, default=0, help="stop an epoch after this many steps (0: all)")
    ap.add_argument("--seed", type=int, default=2023)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    seqs, n_items = read_sequences(a.data)
    S = a.max_seq_len + 1
    samples = [[i + 1 for i in s[-S:]] for s in seqs if len(s) >= 2]
    count = torch.zeros(n_items + 1)
    for s in samples:
        for r in s:
            count[r] += 1
    logpop = torch.log(count.clamp(min=1) / count.sum())
    logpop[0] = 0
    tt, mt = load_tokens(a.text_tokens, n_items, a.tokens, a.width, a.max_tokens, 1)
    tv, mv = load_tokens(a.image_tokens, n_items, a.tokens, a.width, a.max_tokens, 2)
    model = PMMRec(a, tt.shape[-1], tv.shape[-1])
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    L, B = a.max_seq_len, a.batch_size
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool))
    for ep in range(1, a.epochs + 1):
        order = list(range(len(samples)))
        random.shuffle(order)
        t0, c0 = time.perf_counter(), time.process_time()
        steps, tot = 0, 0.0
        for lo in range(0, len(order), B):
            if a.max_steps and steps >= a.max_steps:
                break
            batch = [samples[k] for k in order[lo:lo + B]]
            slots = torch.zeros(B, S, dtype=torch.long)
            for b, s in enumerate(batch):
                slots[b, S - len(s):] = torch.tensor(s)
            flat = slots.view(-1)
            uniq, inv = torch.unique(flat, return_inverse=True)
            emb = model.items(tt[uniq], mt[uniq], tv[uniq], mv[uniq])
            e = emb[inv]  # [B*S, d]
            valid = slots != 0
            bias = torch.where(causal[None] & valid[:, None, :L], 0.0, -1e9)
            h = model.users(e.view(B, S, -1)[:, :L], bias).reshape(B * L, -1)
            logits = h @ e.t() - logpop[flat][None]
            own = (slots[:, :, None] == flat[None, None, :]).any(1)  # [B, B*S] column item in user's list
            mask = own[:, None, :].expand(B, L, B * S).reshape(B * L, B * S) | (flat == 0)[None]
            target = (torch.arange(B)[:, None] * S + torch.arange(L)[None] + 1).reshape(-1)
            mask[torch.arange(B * L), target] = False
            logits = logits.masked_fill(mask, -1e4)
            rows = valid[:, :L].reshape(-1)
            loss = F.cross_entropy(logits[rows], target[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            tot += loss.item()
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(json.dumps({"epoch": ep, "seconds": round(sec, 3), "cpu_seconds": round(cpu, 3), "steps": steps,
                          "loss": round(tot / max(steps, 1), 5), "ms_per_step": round(1000 * sec / max(steps, 1), 1)}), flush=True)


if __name__ == "__main__":
    main()
