#!/usr/bin/python3
"""PyTorch CPU MMSSL (faithful mode) epoch timing, the comparison point of
`mmpipe train --model mmssl` (train/models/mmssl, research/models.md §2).

The same model, sizes and quirks as mmpipe's faithful mode (models.md §2.12):
- recommender: F_m = Dropout_0.2(X_m W_m + b_m); U_m = G_ui F_m, I_m = G_iu U_m
  over the half-normalised graphs G_ui = D_u^-1/2 R, G_iu = D_i^-1/2 R^T (Q4);
  Ũ_m = G^m_ui E_i, Ĩ_m = G^m_iu E_u over the generated graphs, fused by the
  reference's "attention" as it executes, the linear map x W_sum (W_sum the
  sum of the head_num row blocks of w_self_attention_cat, Q2), averaged over
  modalities; E0 = E + 0.36 norm(fused); two sequential CF layers, the last
  with a softmax over the feature axis (Q4); U* = mean(E0, u1, u2) +
  0.55 Σ_m norm(U_m), likewise I*.
- generated graphs: k = int(items · 1e-4) = 0 on TikTok; batch 0 of an epoch
  collects top-k pairs, every later batch rebuilds the graphs from the pairs
  collected since (empty: the graphs collapse, Q1).
- critic: Linear(I→I/4) → LeakyReLU(slope 1 = identity, Q3) → BatchNorm1d →
  Dropout(0.31) → Linear(I/4→I/8) → LeakyReLU(1) → BatchNorm1d → Dropout(0.5)
  → Linear(→1) → Sigmoid × 100, always in train mode; Adam(3e-4, 0.5, 0.9).
- per batch (1024 distinct users, one positive, one rejection-sampled
  negative; ⌊train rows / 1024⌋ + 1 batches per epoch): step 1, the critic:
  a model forward without gradient, fake = [u_sim(U_m, I_m)]_m, real =
  normalise(gumbel_softmax(R_u) + 100 u_sim(U*, I*)) repeated per modality,
  D(fake), D(real), the gradient penalty 0.3·mean((‖∇D(x̂)‖ − 1)²) on the
  interpolates (double backward), an Adam step; step 2, the recommender: a
  forward with gradient, BPR + 1e-5 L2 of the batch rows + 1e-5 L2 of the
  modality embeddings / items + 0.03 InfoNCE(Ũ_m[u], U*[u]) (τ 0.5,
  GRACE-style) − 1e-4 mean D(fake) through the updated critic (whose
  parameter gradients are computed and then discarded, as in the
  reference), AdamW (lr 5.5e-4, weight decay 0.01, Q5).

Timing split as in mmpipe's "mmssl epoch time" log line: "critic" is the
critic step after its model forward plus the generator's critic pass (fake
rows, D forward and backward to its input); "recommender" is the rest (both
model forwards, the losses, the model's backward and AdamW, sampling).

Reads the raw TikTok files of ../shared/data/tiktok directly (the given
split of `mmpipe ingest --format mmrec`: tiktok.inter's x_label 0/1/2 =
train/valid/test; image_feat.npy and audio_feat.npy, the two modalities
mmpipe's dataset holds). Not a runtime dependency of mmpipe; Debian's
python3-torch, run with /usr/bin/python3:

  /usr/bin/python3 bench/train/mmssl_torch.py --data ../shared/data/tiktok --threads 2 --epochs 1

Prints one line per epoch on stderr and one JSON object on stdout: per-epoch
wall and CPU seconds with the critic / recommender split, and with --eval the
validation Recall@20 after each epoch (train items masked, standard recall).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load(path):
    """Returns the train/valid pairs, user and item counts and the features."""
    rows = np.loadtxt(os.path.join(path, "tiktok.inter"), dtype=np.int64, skiprows=1)
    if rows.ndim != 2 or rows.shape[1] < 3:
        raise SystemExit(f"{path}/tiktok.inter: want columns userID itemID x_label")
    train = np.unique(rows[rows[:, 2] == 0][:, :2], axis=0)
    valid = rows[rows[:, 2] == 1][:, :2]
    nu, ni = int(rows[:, 0].max()) + 1, int(rows[:, 1].max()) + 1
    feats = []
    for name in ("audio", "image"):  # mmpipe's modality order (by name)
        x = np.load(os.path.join(path, f"{name}_feat.npy")).astype(np.float32)
        if x.shape[0] != ni:
            raise SystemExit(f"{name}_feat.npy: {x.shape[0]} rows for {ni} items")
        feats.append(torch.from_numpy(x))
    return train, valid, nu, ni, feats


def half_norm(rows, cols, n_rows, n_cols):
    """D^-1/2 A (rows scaled, columns not) as a sparse COO tensor."""
    deg = np.bincount(rows, minlength=n_rows).astype(np.float64)
    val = (1 / np.sqrt(deg[rows] + 1e-8)).astype(np.float32)
    idx = torch.tensor(np.stack([rows, cols]), dtype=torch.int64)
    return torch.sparse_coo_tensor(idx, torch.tensor(val), (n_rows, n_cols)).coalesce()


def graphs(pairs, nu, ni):
    return half_norm(pairs[:, 0], pairs[:, 1], nu, ni), half_norm(pairs[:, 1], pairs[:, 0], ni, nu)


class Recommender(nn.Module):
    def __init__(self, nu, ni, dims, d=64, heads=4, layers=2, drop=0.2):
        super().__init__()
        self.eu = nn.Parameter(nn.init.xavier_uniform_(torch.empty(nu, d)))
        self.ei = nn.Parameter(nn.init.xavier_uniform_(torch.empty(ni, d)))
        self.trans = nn.ModuleList(nn.Linear(dm, d) for dm in dims)
        for t in self.trans:
            nn.init.xavier_uniform_(t.weight)
        self.wcat = nn.Parameter(nn.init.xavier_uniform_(torch.empty(heads * d, d)))
        self.heads, self.d, self.layers = heads, d, layers
        self.drop = nn.Dropout(drop)

    def forward(self, feats, gui, giu, gen):
        d = self.d
        wsum = self.wcat.view(self.heads, d, d).sum(0)
        um, im, ut = [], [], []
        zu = torch.zeros_like(self.eu)
        zi = torch.zeros_like(self.ei)
        for k, x in enumerate(feats):
            f = self.drop(self.trans[k](x))
            u = torch.sparse.mm(gui, f)
            um.append(u)
            im.append(torch.sparse.mm(giu, u))
            gu, gi = gen[k]
            t_u = torch.sparse.mm(gu, self.ei)
            t_i = torch.sparse.mm(gi, self.eu)
            ut.append(t_u)
            zu = zu + t_u @ wsum / len(feats)
            zi = zi + t_i @ wsum / len(feats)
        e0u = self.eu + 0.36 * F.normalize(zu, dim=1)
        e0i = self.ei + 0.36 * F.normalize(zi, dim=1)
        su, si, prev = [e0u], [e0i], e0i
        for l in range(self.layers):
            u = torch.sparse.mm(gui, prev)
            if l == self.layers - 1:
                u = F.softmax(u, dim=1)
            i = torch.sparse.mm(giu, u)
            if l == self.layers - 1:
                i = F.softmax(i, dim=1)
            su.append(u)
            si.append(i)
            prev = i
        ustar = torch.stack(su).mean(0)
        istar = torch.stack(si).mean(0)
        for k in range(len(feats)):
            ustar = ustar + 0.55 * F.normalize(um[k], dim=1)
            istar = istar + 0.55 * F.normalize(im[k], dim=1)
        return ustar, istar, um, im, ut


class Critic(nn.Module):
    def __init__(self, items, p1=0.31, p2=0.5, slope=1.0):
        super().__init__()
        h1, h2 = int(items / 4), int(items / 8)
        self.net = nn.Sequential(
            nn.Linear(items, h1), nn.LeakyReLU(slope), nn.BatchNorm1d(h1), nn.Dropout(p1),
            nn.Linear(h1, h2), nn.LeakyReLU(slope), nn.BatchNorm1d(h2), nn.Dropout(p2),
            nn.Linear(h2, 1), nn.Sigmoid())
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return 100 * self.net(x)


def u_sim(p, q, mask):
    """normalise((P Q^T) ⊙ (1 − R_u)) row by row."""
    return F.normalize((p @ q.T) * (1 - mask), dim=1)


def info_nce(z1, z2, tau):
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    refl = torch.exp(a @ a.T / tau)
    betw = torch.exp(a @ b.T / tau)
    ratio = betw.diag() / (refl.sum(1) + betw.sum(1) - refl.diag())
    return -torch.log(ratio + 1e-8).mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="raw TikTok folder (tiktok.inter, image_feat.npy, audio_feat.npy)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batches", type=int, default=0, help="stop each epoch after this many batches (0: all; smoke tests)")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=2022)
    ap.add_argument("--eval", action="store_true", help="validation Recall@20 after each epoch")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    train, valid, nu, ni, feats = load(a.data)
    gui, giu = graphs(train, nu, ni)
    R = torch.zeros(nu, ni, dtype=torch.uint8)
    R[train[:, 0], train[:, 1]] = 1
    items_of = [[] for _ in range(nu)]
    for u, i in train:
        items_of[u].append(i)
    item_sets = [set(x) for x in items_of]
    exist = np.array([u for u in range(nu) if items_of[u]])
    batches = len(train) // a.batch + 1
    k = int(ni * 1e-4)
    model = Recommender(nu, ni, [f.shape[1] for f in feats])
    critic = Critic(ni)
    opt = torch.optim.AdamW(model.parameters(), lr=5.5e-4)  # weight decay 0.01 (PyTorch's default)
    dopt = torch.optim.Adam(critic.parameters(), lr=3e-4, betas=(0.5, 0.9))
    nm = len(feats)
    gen = [(gui, giu)] * nm
    collected = [[] for _ in range(nm)]

    def sample():
        users = rng.choice(exist, size=min(a.batch, len(exist)), replace=False)
        pos = np.array([items_of[u][rng.integers(len(items_of[u]))] for u in users])
        neg = np.empty_like(pos)
        for j, u in enumerate(users):
            while True:
                n = int(rng.integers(ni))
                if n not in item_sets[u]:
                    break
            neg[j] = n
        return torch.from_numpy(users), torch.from_numpy(pos), torch.from_numpy(neg)

    epochs = []
    for ep in range(a.epochs):
        model.train()
        critic.train()
        t_crit = 0.0
        w0, c0 = time.perf_counter(), time.process_time()
        nb = batches if a.batches <= 0 else min(a.batches, batches)
        for idx in range(nb):
            users, pos, neg = sample()
            mask = R[users].float()
            # Step 1: the critic.
            with torch.no_grad():
                ustar, istar, um, im, ut = model(feats, gui, giu, gen)
            t0 = time.perf_counter()
            with torch.no_grad():
                fake = torch.cat([u_sim(um[m][users], im[m], mask) for m in range(nm)])
                g = -torch.log(-torch.log(torch.rand_like(mask) + 1e-8) + 1e-8)
                r = F.softmax((mask + 1e-5 * g) / 0.005, dim=1)
                r = F.normalize(r + 100 * u_sim(ustar[users], istar, mask), dim=1)
                real = torch.cat([r] * nm)
            dopt.zero_grad()
            d_real = critic(real).mean()
            d_fake = critic(fake).mean()
            alpha = torch.rand(real.shape[0], 1)
            x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            grad, = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
            gp = 0.3 * ((grad.norm(2, dim=1) - 1) ** 2).mean()
            d_loss = -d_real + d_fake + 1.0 * gp
            d_loss.backward()
            dopt.step()
            t_crit += time.perf_counter() - t0
            # Step 2: the recommender.
            ustar, istar, um, im, ut = model(feats, gui, giu, gen)
            bu, bp, bn = ustar[users], istar[pos], istar[neg]
            bpr = -F.logsigmoid((bu * bp).sum(1) - (bu * bn).sum(1)).mean()
            reg = 1e-5 * 0.5 * (bu.pow(2).sum() + bp.pow(2).sum() + bn.pow(2).sum()) / len(users)
            if idx % 1 == 0 and idx != 0:  # T = 1: rebuild from the pairs collected since (Q1)
                for m in range(nm):
                    pairs = np.array(collected[m], dtype=np.int64).reshape(-1, 2)
                    gen[m] = graphs(pairs, nu, ni)
                    collected[m] = []
            elif k > 0:
                with torch.no_grad():
                    for m in range(nm):
                        top = torch.topk(u_sim(um[m][users], im[m], mask), k, dim=1).indices
                        collected[m] += [(int(u), int(i)) for u, row in zip(users, top) for i in row]
            feat = 1e-5 * 0.5 * sum(x.pow(2).sum() for x in um + im) / ni
            cl = sum(info_nce(ut[m][users], bu, 0.5) for m in range(nm))
            t0 = time.perf_counter()
            fake = torch.cat([u_sim(um[m][users], im[m], mask) for m in range(nm)])
            fd = fake.detach().requires_grad_(True)
            g_adv = -critic(fd).mean()
            (1e-4 * g_adv).backward()  # critic parameter gradients too, as in the reference
            t_crit += time.perf_counter() - t0
            loss = bpr + reg + feat + 0.03 * cl + (fake * fd.grad).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if idx == 0 or (idx + 1) % 10 == 0:
                print(f"  batch {idx + 1}/{nb}: bpr {bpr.item():.4f} cl {cl.item():.4f} d_loss {d_loss.item():.4f} "
                      f"gp {gp.item():.4g} {time.perf_counter() - w0:.1f} s", file=sys.stderr, flush=True)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        e = {"epoch": ep + 1, "batches": nb, "seconds": wall, "cpu_seconds": cpu,
             "critic_seconds": t_crit, "recommender_seconds": wall - t_crit}
        if a.eval:
            e["valid_recall@20"] = evaluate(model, feats, gui, giu, gen, R, valid)
        epochs.append(e)
        print(f"epoch {ep + 1}: {wall:.1f} s wall, {cpu:.1f} CPU s (critic {t_crit:.1f} s, "
              f"recommender {wall - t_crit:.1f} s)" + (f", valid Recall@20 {e['valid_recall@20']:.4f}" if a.eval else ""),
              file=sys.stderr, flush=True)
    print(json.dumps({"model": "mmssl-faithful-torch", "torch": torch.__version__, "threads": a.threads,
                      "users": nu, "items": ni, "train": len(train), "batches_per_epoch": batches,
                      "epochs": epochs}))


def evaluate(model, feats, gui, giu, gen, R, valid):
    model.eval()
    with torch.no_grad():
        ustar, istar, *_ = model(feats, gui, giu, gen)
    model.train()
    truth = {}
    for u, i in valid:
        truth.setdefault(int(u), set()).add(int(i))
    users = torch.tensor(sorted(truth))
    total = 0.0
    for lo in range(0, len(users), 2048):
        ub = users[lo:lo + 2048]
        s = ustar[ub] @ istar.T
        s[R[ub].bool()] = -float("inf")
        top = torch.topk(s, 20, dim=1).indices.numpy()
        for u, row in zip(ub.tolist(), top):
            total += len(truth[u].intersection(row.tolist())) / len(truth[u])
    return total / len(users)


if __name__ == "__main__":
    main()
