"""Probe (docs/experiments.md section 27): each cell's D(G(x)) normalised by what is normal at that place (mean and
spread of the cell's scores on the model's held-out footage, shrunk toward the whole frame's with weight k), the
frame score the max of those, against today's decision. Scores the test clips once, tries k offline.

    python pipelines/cell_norm_probe.py MODEL DATASET ROOT     # prints one JSON line
"""

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ognet_video.calibrate.heldout import kept  # noqa: E402
from ognet_video.data import load_dataset  # noqa: E402
from ognet_video.decide import causal_smooth, decide  # noqa: E402
from ognet_video.evaluation.metrics import auc  # noqa: E402
from ognet_video.models.detector import Detector  # noqa: E402
from ognet_video.stream.scoring import FrameScorer  # noqa: E402

torch.set_num_threads(2)
warnings.filterwarnings("ignore", category=RuntimeWarning)  # cells that never moved: nan means, shrunk away
model, name, root = sys.argv[1], sys.argv[2], sys.argv[3]
det = Detector.load(model)
cfg = det.cfg.score
held = kept(det, model)
ds = load_dataset(name, root)
cache = Path(f"/tmp/cell-norm-cache-{Path(model).parent.name}-{name}.npz")
if cache.exists():
    d = np.load(cache, allow_pickle=True)
    test = d["test"].item()
else:
    t0 = time.time()
    sc = FrameScorer(det)
    test = {}
    for c in ds.test:
        fs = sc.score_clip(f.image for f in c.source())
        test[c.name] = (fs, c.labels)
    np.savez(cache, test=np.array(test, dtype=object))
    print("scored test in", round(time.time() - t0), "s")

w = cfg.causal_window
y = np.concatenate([lab for _, lab in test.values()])


def micro(scores: dict) -> float:
    return auc(y, np.concatenate([scores[k] for k in test]))


base = {k: decide(fs, det.calibration, cfg).smoothed for k, (fs, _) in test.items()}
print("today:", round(micro(base), 4))

H = np.concatenate([fs.patch[fs.scored] for fs in held.scores.values()])  # (frames, cells)
finite = np.isfinite(H)
glob_mu, glob_sd = np.nanmean(H), np.nanstd(H)
n_c = finite.sum(0)


def cell_z(patch, k, stat="z"):
    mu_c = np.where(n_c > 0, np.nanmean(np.where(finite, H, np.nan), 0), glob_mu)
    var_c = np.where(n_c > 1, np.nanvar(np.where(finite, H, np.nan), 0), glob_sd**2)
    mu = (n_c * np.nan_to_num(mu_c) + k * glob_mu) / (n_c + k)
    var = (n_c * np.nan_to_num(var_c) + k * glob_sd**2) / (n_c + k)
    return (patch - mu) / np.sqrt(var)


def frame_scores(fs, k, agg="max"):
    z = cell_z(fs.patch, k)
    has = np.isfinite(z).any(1)
    out = np.full(len(z), np.nan)
    if agg == "max":
        out[has] = np.nanmax(z[has], 1)
    return out


results = {}
for k in (5, 20, 50, 200, 1000):
    # global normalisation of the new frame score on held-out footage, as the calibration does
    hf = np.concatenate([frame_scores(fs, k)[fs.scored] for fs in held.scores.values()])
    floor = np.nanmin(hf)
    hf = np.where(np.isnan(hf), floor, hf)
    m, s = hf.mean(), hf.std() or 1
    sm = {}
    for key, (fs, _) in test.items():
        f = frame_scores(fs, k)
        f = np.where(np.isnan(f), floor, f)
        zz = np.where(fs.scored, (f - m) / s, np.nan)
        sm[key] = causal_smooth(zz, w, (floor - m) / s)
    results[k] = round(micro(sm), 4)
    print("cell-normalised k =", k, results[k], flush=True)
print(json.dumps({"model": model, "today": round(micro(base), 4), "cell": results}))
