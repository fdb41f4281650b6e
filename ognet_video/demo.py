"""The offline demo: synthetic street-camera clips, a small OGNet trained in a few minutes, its report.

Everything lands in the project folder (``runs/`` by default), so ``watch``, ``score`` and ``eval``
find the demo's clips and model afterwards: the clips in ``runs/demo/walkway`` (rewritten only when
the seed or the scene changes) and each run in a numbered ``runs/train/demo-N``.

The scene has a road with cars passing fast in every clip, and the anomaly is a cyclist riding along
the walkway: motion magnitude alone (the "max motion" reference row of the report) cannot find it,
a model of what normal motion looks like can.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from ognet_video.config import Config, validate
from ognet_video.data import load_dataset
from ognet_video.data.synthetic import write_walkway
from ognet_video.evaluation.evaluate import evaluate, metrics_table, per_clip_table
from ognet_video.models.detector import Detector, pick_device
from ognet_video.runs import new_run_dir
from ognet_video.training.train import train

SCENE_VERSION = 1  # bump when write_walkway's road scene changes, so old demo clips are rewritten
MARKER = "demo.json"


@dataclass
class DemoResult:
    data_dir: Path
    run_dir: Path
    model_path: Path
    metrics: dict  # what ``evaluate`` returns in ``.metrics``
    next_command: str  # what to try next, typed from the current folder
    seconds: float = 0.0
    reused_data: bool = False
    scene: dict = field(default_factory=dict)


def demo_config(seed: int = 0) -> Config:
    """The Ped2 CPU recipe (flow cells, frozen BatchNorm, D averaged, frame-skip twins) scaled to tiny frames."""
    cfg = Config()
    p, m, t, s = cfg.patches, cfg.model, cfg.train, cfg.score
    m.preset, m.g_arch = "custom", "strided"
    m.g_channels = [8, 16, 32, 32]
    m.d_channels = [8, 16, 32, 32]
    p.size = p.stride = 21  # 6 x 9 cells on the half-size frame: one cell ~ two walkers
    p.height, p.width = 126, 189
    p.motion_threshold = 2.0
    p.channels = "flow"
    p.flow_scale = 4.0
    p.flow_preset = "medium"
    t.epochs = 4
    t.batch_size = 64
    t.noise_std = 0.5
    t.phase2_steps = 300
    t.phase2_lr = 1e-4
    t.phase2_norm = "frozen"
    t.phase2_ema = 0.99
    t.skip_frames = [2, 3, 4]
    t.max_patches = 6000
    t.holdout_clips = 2
    t.seed = seed
    t.members = 1  # one network: the demo stays about a minute
    s.aggregate, s.topk = "topk", 2
    s.crowd_correction = True  # the demo's measured recipe (README); the Ped2 default has it off since 2026-12-07
    s.causal_window = 5
    # two 6 s held-out clips cannot support a rate per hour (its margin for short footage would be most of
    # the threshold: no cyclist flagged); the demo keeps the frame-percentile rule
    s.alarms_per_hour = 0
    validate(cfg)
    return cfg


def demo_scene(train_clips: int = 8, test_clips: int = 4, frames: int = 60) -> dict:
    """``write_walkway`` arguments of the demo (all but root and seed)."""
    return {"train_clips": train_clips, "test_clips": test_clips, "frames": frames, "road": True, "anomaly": "cyclist"}


def write_demo_data(root: Path, seed: int, scene: dict) -> bool:
    """Write the demo clips to ``root`` unless a marker says they were written with this seed and scene.

    Returns True when the clips on disk were reused.
    """
    want = {"version": SCENE_VERSION, "seed": seed, **scene}
    marker = root / MARKER
    try:
        if json.loads(marker.read_text()) == want and (root / "testing" / "labels.json").is_file():
            return True
    except (OSError, ValueError):
        pass
    for split in ("training", "testing"):  # leftovers of a larger scene would become extra clips
        shutil.rmtree(root / split, ignore_errors=True)
    marker.unlink(missing_ok=True)
    write_walkway(root, seed=seed, **scene)
    marker.write_text(json.dumps(want, indent=2) + "\n")
    return False


def typed_path(path: Path) -> str:
    """``path`` as a user types it from the current folder: relative below it, absolute elsewhere, quoted."""
    full = path.resolve()
    try:
        text = str(full.relative_to(Path.cwd().resolve()))
    except ValueError:
        text = str(full)
    return shlex.quote(text if os.sep == "/" else text.replace(os.sep, "/"))


def run_demo(project: Path = Path("runs"), seed: int = 0, console: Console | None = None, device: str = "cpu",
             *, train_clips: int = 8, test_clips: int = 4, frames: int = 60) -> DemoResult:  # fmt: skip
    """Write (or reuse) the clips, train ``runs/train/demo-N``, evaluate it and say what to run next."""
    console = console or Console()
    t0 = time.perf_counter()
    project = Path(project)
    data_dir = project / "demo" / "walkway"
    data_dir.mkdir(parents=True, exist_ok=True)
    scene = demo_scene(train_clips, test_clips, frames)
    reused = write_demo_data(data_dir, seed, scene)
    what = "reused" if reused else "written"
    console.print(f"synthetic street-camera clips {what}: {data_dir} ({train_clips} normal, {test_clips} with a "
                  "cyclist on the walkway; cars pass on the road in all of them)", highlight=False)  # fmt: skip
    ds = load_dataset("folder", data_dir)
    run_dir = new_run_dir(project / "train", "demo")
    dev = pick_device(device)
    res = train(demo_config(seed), ds, run_dir, device=dev, console=console)
    detector = Detector.load(res.model_path, device=dev)
    ev = evaluate(detector, ds.test, run_dir, console)
    console.print(metrics_table(ev.metrics, f"demo: frame-level AUC ({len(ds.test)} test clips)"))
    console.print(per_clip_table(ev.metrics))
    thr = ev.metrics["at_threshold"]
    console.print(f"at the calibrated threshold (causal): recall {thr['recall']:.3f}, false-positive rate "
                  f"{thr['false_positive_rate']:.3f}  |  report: {run_dir}/metrics.json, roc.png, timelines/",
                  highlight=False)  # fmt: skip
    if res.validation is not None:  # what a user without labels would see
        from ognet_video.evaluation.validation import check_line

        console.print(check_line(res.validation), highlight=False)
    clip = next(c for c in ds.test if c.labels is not None and c.labels.any())
    clip_dir = clip.frames[0].parent
    next_command = f"ognet-video watch {typed_path(clip_dir)} --model {typed_path(run_dir)} --save-video"
    return DemoResult(data_dir, run_dir, res.model_path, ev.metrics, next_command, time.perf_counter() - t0,
                      reused, scene)  # fmt: skip
