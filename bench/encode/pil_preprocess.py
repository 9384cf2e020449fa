#!/usr/bin/python3
"""Reference image preprocessing with Pillow + numpy, as Hugging Face's
CLIPImageProcessor (recipe clip) and PMMRec's torchvision transforms
(recipe pmmrec) compute it, over the .jpg files of a folder, read into
memory first. Prints images per second.

usage: pil_preprocess.py DIR [--recipe clip|pmmrec] [--procs N] [--seconds S]
"""
import argparse
import glob
import io
import multiprocessing as mp
import os
import time

import numpy as np
from PIL import Image

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
HALF = np.full(3, 0.5, dtype=np.float32)


def clip(data):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    nl = int(224 * long / short)
    im = im.resize((224, nl) if w <= h else (nl, 224), Image.BICUBIC)
    a = np.asarray(im)
    top, left = (a.shape[0] - 224) // 2, (a.shape[1] - 224) // 2
    a = a[top:top + 224, left:left + 224]
    x = (a.astype(np.float32) / np.float32(255) - CLIP_MEAN) / CLIP_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def pmmrec(data):
    im = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = (np.asarray(im).astype(np.float32) / np.float32(255) - HALF) / HALF
    return np.ascontiguousarray(x.transpose(2, 0, 1))


IMAGES = []
FN = None


def init(paths, recipe):
    global IMAGES, FN
    IMAGES = [open(p, "rb").read() for p in paths]
    FN = clip if recipe == "clip" else pmmrec


def work(args):
    start, seconds = args
    n, i = 0, start
    t0, c0 = time.perf_counter(), time.process_time()
    while n < len(IMAGES) or time.perf_counter() - t0 < seconds:
        FN(IMAGES[i % len(IMAGES)])
        n, i = n + 1, i + 1
    return n, time.perf_counter() - t0, time.process_time() - c0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--recipe", default="clip", choices=["clip", "pmmrec"])
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5)
    a = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(a.dir, "*.jpg")))
    if not paths:
        raise SystemExit("no .jpg files in %s" % a.dir)
    if a.procs == 1:
        init(paths, a.recipe)
        parts = [work((0, a.seconds))]
    else:
        with mp.Pool(a.procs, initializer=init, initargs=(paths, a.recipe)) as pool:
            parts = pool.map(work, [(k * 37, a.seconds) for k in range(a.procs)])
    n = sum(p[0] for p in parts)
    wall = sum(p[0] / p[1] for p in parts)
    cpu = n / sum(p[2] for p in parts)
    import PIL
    print("python pillow %s numpy %s recipe=%s procs=%d items=%d: %.1f /s wall, %.1f per cpu-s"
          % (PIL.__version__, np.__version__, a.recipe, a.procs, n, wall, cpu))


if __name__ == "__main__":
    main()
