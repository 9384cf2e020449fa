#!/usr/bin/python3
"""PyTorch CPU LightGCN epoch timing, the comparison point of mmpipe's LightGCN.

Same model and sizes as `mmpipe train --model lightgcn` (train/models/lightgcn):
symmetric D^-1/2 A D^-1/2 over the training interactions (sparse COO with
torch.sparse.mm as the official LightGCN-PyTorch code, or CSR), embeddings
N(0, 0.1^2), 3 layers, mean of layers 0..3, BPR with one uniform negative,
reg * 1/2 * ||ego rows||^2 / B, dense torch.optim.Adam, batch 2048,
ceil(train rows / 2048) steps per epoch. Sampling is vectorised numpy and
counted in the epoch time (mmpipe's sampler is counted in its epoch too).

Reads the raw files of ../shared/data directly (not a runtime dependency of
mmpipe; Debian's python3-torch, run with /usr/bin/python3):

  tiktok: tiktok.inter (userID itemID x_label; x_label 0 = train)
  baby:   train.json ({"user": [items]}), val.json / test.json for --eval

Prints one JSON object: per-epoch seconds, their median, and with --eval the
test Recall@20 / NDCG@20 (train items masked) after the last epoch.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load(path, name):
    if name == "tiktok":
        rows = np.loadtxt(os.path.join(path, "tiktok.inter"), dtype=np.int64, skiprows=1)
        train = rows[rows[:, 2] == 0][:, :2]
        test = rows[rows[:, 2] == 2][:, :2]
        n_users, n_items = int(rows[:, 0].max()) + 1, int(rows[:, 1].max()) + 1
        return train, test, n_users, n_items
    parts = {}
    for p in ("train", "val", "test"):
        with open(os.path.join(path, p + ".json")) as f:
            d = json.load(f)
        parts[p] = np.array([(int(u), int(i)) for u, items in d.items() for i in items], dtype=np.int64).reshape(-1, 2)
    allr = np.concatenate(list(parts.values()))
    return parts["train"], parts["test"], int(allr[:, 0].max()) + 1, int(allr[:, 1].max()) + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="raw dataset folder")
    ap.add_argument("--name", choices=["tiktok", "baby"], required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--reg", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--sparse", choices=["coo", "csr"], default="coo",
                    help="adjacency layout: coo (torch.sparse.mm, as the official LightGCN-PyTorch code) or csr")
    ap.add_argument("--eval", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    train, test, nu, ni = load(a.data, a.name)
    pairs = np.unique(train, axis=0)
    n = nu + ni
    deg = np.zeros(n)
    np.add.at(deg, pairs[:, 0], 1)
    np.add.at(deg, nu + pairs[:, 1], 1)
    inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0)
    src = np.concatenate([pairs[:, 0], nu + pairs[:, 1]])
    dst = np.concatenate([nu + pairs[:, 1], pairs[:, 0]])
    val = (inv[src] * inv[dst]).astype(np.float32)
    A = torch.sparse_coo_tensor(torch.tensor(np.stack([dst, src])), torch.tensor(val), (n, n)).coalesce()
    if a.sparse == "csr":
        A = A.to_sparse_csr()

    ego = torch.nn.Parameter(torch.randn(n, a.dim) * 0.1)
    opt = torch.optim.Adam([ego], lr=a.lr)

    users_with = np.unique(pairs[:, 0])
    start = np.searchsorted(pairs[:, 0], np.arange(nu))
    count = np.bincount(pairs[:, 0], minlength=nu)
    pos_set = set(map(tuple, pairs.tolist()))
    steps = math.ceil(len(train) / a.batch)

    def forward(x):
        s, cur = x, x
        for _ in range(a.layers):
            cur = torch.sparse.mm(A, cur)
            s = s + cur
        return s / (a.layers + 1)

    def sample(b):
        u = users_with[rng.integers(0, len(users_with), b)]
        p = pairs[start[u] + (rng.random(b) * count[u]).astype(np.int64), 1]
        neg = rng.integers(0, ni, b)
        for k in range(b):  # rejection, as the reference sampler
            while (u[k], neg[k]) in pos_set:
                neg[k] = rng.integers(0, ni)
        return torch.from_numpy(u), torch.from_numpy(p + nu), torch.from_numpy(neg + nu)

    secs, cpus, losses = [], [], []
    for _ in range(a.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        tot = 0.0
        for _ in range(steps):
            u, p, q = sample(a.batch)
            f = forward(ego)
            diff = (f[u] * f[p]).sum(-1) - (f[u] * f[q]).sum(-1)
            reg = (ego[u].pow(2).sum() + ego[p].pow(2).sum() + ego[q].pow(2).sum()) / (2 * a.batch)
            loss = F.softplus(-diff).mean() + a.reg * reg
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item()
        secs.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        losses.append(tot / steps)
    out = {"impl": "pytorch " + torch.__version__ + " " + a.sparse, "dataset": a.name, "threads": a.threads, "users": nu, "items": ni,
           "train": int(len(train)), "steps_per_epoch": steps, "epochs": a.epochs, "epoch_seconds": secs,
           "median_epoch_seconds": float(np.median(secs)),
           "epoch_cpu_seconds": cpus, "median_epoch_cpu_seconds": float(np.median(cpus)), "step_ms": float(np.median(secs)) / steps * 1000,
           "loss": losses}
    if a.eval:
        with torch.no_grad():
            f = forward(ego)
            fu, fi = f[:nu], f[nu:]
            tests = {}
            for uu, ii in test.tolist():
                tests.setdefault(uu, set()).add(ii)
            hits_r, hits_n = [], []
            users = sorted(tests)
            for b0 in range(0, len(users), 1024):
                bu = users[b0:b0 + 1024]
                sc = fu[bu] @ fi.T
                for row, uu in enumerate(bu):
                    s, c = start[uu], count[uu]
                    sc[row, torch.from_numpy(pairs[s:s + c, 1])] = -float("inf")
                top = torch.topk(sc, 20).indices.numpy()
                for row, uu in enumerate(bu):
                    t = tests[uu]
                    h = [1 if x in t else 0 for x in top[row]]
                    hits_r.append(sum(h) / len(t))
                    idcg = sum(1 / math.log2(j + 2) for j in range(min(len(t), 20)))
                    hits_n.append(sum(hv / math.log2(j + 2) for j, hv in enumerate(h)) / idcg)
            out["test_recall@20"], out["test_ndcg@20"] = float(np.mean(hits_r)), float(np.mean(hits_n))
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
