"""Side-by-side check of a non-square folder: segdist's validation / eval / predict Dice against
PyTorch training the same UNet (shared/reference/torch_unet.py) with the same recipe at the
images' own size. Not part of `swift test`. Needs torch, numpy and Pillow (PyPI).

    python Tests/Fixtures/compare_folder_unet.py make DIR            # 540 + 60 grey 64x84 images, 3 classes
    python Tests/Fixtures/compare_folder_unet.py torch DIR STEPS [SEED]  # PyTorch: train, then Dice on DIR/val
    python Tests/Fixtures/compare_folder_unet.py score PRED DIR      # Dice of segdist predict's mask.png files

Dice per class is the lab's: (2|A∩B| + 1e-4) / (|A| + |B| + 1e-4), the mean over images, classes
by arg-max — what segdist reports.
"""
import json
import os
import sys
import time

import numpy as np
from PIL import Image

H, W, K = 64, 84, 3


def make(root):
    rng = np.random.RandomState(0)
    for split, count, first in [("", 540, 0), ("val/", 60, 10000)]:
        for sub in ("images", "masks"):
            os.makedirs(os.path.join(root, split + sub), exist_ok=True)
        for i in range(count):
            grey = np.ones((H, W)); label = np.zeros((H, W), np.uint8)
            yy, xx = np.mgrid[0:H, 0:W]
            for _ in range(4):   # discs: class 1
                cy, cx, r = rng.randint(6, H - 6), rng.randint(6, W - 6), rng.randint(4, 14)
                inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
                grey[inside] = rng.randint(60, 255); label[inside] = 1
            for _ in range(2):   # squares: class 2
                y, x, s = rng.randint(0, H - 8), rng.randint(0, W - 8), rng.randint(6, 16)
                grey[y:y + s, x:x + s] = rng.randint(60, 255); label[y:y + s, x:x + s] = 2
            grey = grey + rng.normal(0, 25, grey.shape)
            grey = (grey - grey.min()) / (grey.max() - grey.min()) * 255
            name = "%05d.png" % (first + i)
            Image.fromarray(grey.round().astype(np.uint8)).save(os.path.join(root, split + "images", name))
            Image.fromarray(label).save(os.path.join(root, split + "masks", name))


def dice(pred, truth):
    out = []
    for k in range(K):
        a, b = pred == k, truth == k
        out.append((2 * np.logical_and(a, b).sum() + 1e-4) / (a.sum() + b.sum() + 1e-4))
    return out


def load(root, split):
    names = sorted(os.listdir(os.path.join(root, split + "images")))
    x = np.stack([np.asarray(Image.open(os.path.join(root, split + "images", n)), np.float32) / 255 for n in names])
    y = np.stack([np.asarray(Image.open(os.path.join(root, split + "masks", n)), np.int64) for n in names])
    return names, x, y


def torch_run(root, steps, seed=0):
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/reference"))
    from torch_unet import UNet
    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count())
    _, x, y = load(root, "")
    names, vx, vy = load(root, "val/")
    model = UNet(1, K, 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs, ys = torch.from_numpy(x)[:, None], torch.from_numpy(y)
    order, at = np.random.RandomState(seed).permutation(len(x)), 0
    start = time.time()
    model.train()
    for step in range(steps):
        if at + 8 > len(order):
            order, at = np.random.RandomState(seed * 100003 + step).permutation(len(x)), 0
        idx = order[at:at + 8]; at += 8
        loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
        opt.zero_grad(); loss.backward(); opt.step()
    seconds = time.time() - start
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(vx)[:, None]).argmax(1).numpy()
    per = np.mean([dice(p, t) for p, t in zip(pred, vy)], 0)
    print(json.dumps({"torch": torch.__version__, "steps": steps, "seed": seed, "seconds": round(seconds, 1), "dice": per.tolist(),
                      "foreground_dice": float(per[1:].mean())}))


def score(pred_root, root):
    names, _, vy = load(root, "val/")
    per = np.mean([dice(np.asarray(Image.open(os.path.join(pred_root, n[:-4], "mask.png")), np.int64), t)
                   for n, t in zip(names, vy)], 0)
    print(json.dumps({"dice": per.tolist(), "foreground_dice": float(per[1:].mean())}))


if __name__ == "__main__":
    {"make": lambda: make(sys.argv[2]), "torch": lambda: torch_run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0),
     "score": lambda: score(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
