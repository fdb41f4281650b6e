"""What training reads: the clips it trains on and holds out, and their moving patches.

Named datasets hold out their last ``train.holdout_clips`` clips; recordings (``data.recordings``) the last
part in time. Either way the held-out footage is checked before any training: it must be able to calibrate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from ognet_video.config import Config
from ognet_video.data import Clip, Dataset
from ognet_video.errors import UserError
from ognet_video.objects import ObjectDensity, normal_objects
from ognet_video.patches import PatchExtractor, optical_flow, to_tensor
from ognet_video.training.distributed import SOLO, World


def split_clips(dataset: Dataset, holdout: int) -> tuple[list[Clip], list[Clip]]:
    """Last ``holdout`` training clips are kept out of training and used only for calibration."""
    if holdout >= len(dataset.train):
        raise UserError(f"train.holdout_clips={holdout} leaves no training clip (dataset has {len(dataset.train)})")
    cut = len(dataset.train) - holdout
    return dataset.train[:cut], dataset.train[cut:]


def load_clip_frames(clip: Clip, extractor: PatchExtractor) -> np.ndarray:
    """A clip's prepared frames; one that decodes to none (a file cut off after it was planned) is a one-line
    UserError naming it, not numpy's 'need at least one array to stack'."""
    frames = [extractor.prepare(f.image) for f in clip.source()]
    if not frames:
        raise UserError(f"{clip.name} decodes to no frames (the file is cut off or changed since it was read): "
                        "replace it or leave it out")  # fmt: skip
    return np.stack(frames)


def collect_patches(
    clips: list[Clip], cfg: Config, progress: Progress | None = None, world: World = SOLO
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All moving patches of the clips as (M, C, s, s) in [-1, 1], and their "too fast" twins for phase two.

    A fast twin of a moving flow patch at frame t takes its flow from frame t-k instead of t-1 (k from
    ``train.skip_frames``): the same scene moving about k times faster than anything normal. It is picked by
    the patch's own motion (frame t against t-1), like the patch. Under torchrun each rank reads every
    ``world.size``-th clip and all ranks then hold all patches, in clip order as one process would.
    """
    ex = PatchExtractor(cfg.patches)
    mine: list[tuple[int, torch.Tensor, list[torch.Tensor]]] = []
    share = [(i, c) for i, c in enumerate(clips) if i % world.size == world.rank]
    task = progress.add_task("patches", total=len(share), info="") if progress else None
    with world.together():
        for i, clip in share:
            frames = load_clip_frames(clip, ex)
            cp = ex.extract(frames)
            moving = ex.moving(cp.motion)
            fast = []
            for k in cfg.train.skip_frames:  # config validation: only with the flow channel
                if len(frames) > k:
                    needed = moving[k:].any(axis=1)  # the twins of moving patches only
                    flow_k = ex.flow_cells(
                        optical_flow(frames[:-k], frames[k:], cfg.patches.flow_preset, needed=needed)
                    )
                    fast.append(to_tensor(cfg.patches, flow=flow_k[moving[k:]]))
            mine.append((i, ex.select(cp, moving), fast))
            if progress is not None and task is not None:
                progress.update(task, advance=1, info=f"{sum(len(p) for _, p, _ in mine)} moving")
    every = sorted((part for rank in world.gather(mine) for part in rank), key=lambda part: part[0])
    data = torch.cat([p for _, p, _ in every])
    fast_parts = [f for _, _, fs in every for f in fs]
    fast_data = torch.cat(fast_parts) if fast_parts else None
    if len(data) < cfg.train.batch_size:
        raise UserError(
            f"only {len(data)} moving patches in the training clips (need >= {cfg.train.batch_size}); "
            "lower patches.motion_threshold or add footage with motion"
        )
    return data, fast_data


def fit_objects(clips: list[Clip], cfg: Config, progress: Progress | None = None) -> ObjectDensity:
    """The object cue's density of normal objects: every moving region of the training clips (not the held-out
    ones: those calibrate the cue as they calibrate the patch score). The flow is recomputed here, a few
    seconds per minute of footage, so that training patches stay free of it."""
    ex = PatchExtractor(cfg.patches)
    task = progress.add_task("objects", total=len(clips), info="") if progress else None

    def flows():
        for clip in clips:
            frames = load_clip_frames(clip, ex)
            cp = ex.extract(frames)  # the flow and moving cells scoring computes (frame 0: no motion, no flow)
            yield cp.frame_flow, ex.moving(cp.motion)
            if progress is not None and task is not None:
                progress.update(task, advance=1)

    features = normal_objects(flows(), cfg.objects, ex)
    if progress is not None and task is not None:
        progress.update(task, info=f"{len(features)} objects")
    return ObjectDensity.fit(features, cfg.objects.neighbors, cfg.objects.max_reference, cfg.train.seed)


def sample_patches(data: torch.Tensor, fast_data: torch.Tensor | None, cfg: Config,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """One member's training set: at most ``train.max_patches`` of each kind, drawn with its seed."""
    gen = torch.Generator().manual_seed(seed)
    if cfg.train.max_patches and len(data) > cfg.train.max_patches:
        data = data[torch.randperm(len(data), generator=gen)[: cfg.train.max_patches]]
    if fast_data is not None and cfg.train.max_patches and len(fast_data) > cfg.train.max_patches:
        fast_data = fast_data[torch.randperm(len(fast_data), generator=gen)[: cfg.train.max_patches]]
    return data, fast_data


def check_holdout(clips: list[Clip], cfg: Config) -> None:
    """The held-out clips must be able to calibrate, checked before any training (not after both phases)."""
    ex = PatchExtractor(cfg.patches)
    short = [c.name for c in clips if len(c) < 2]
    if short:
        raise UserError(f"held-out clip(s) {', '.join(short)} have fewer than 2 frames: no motion to calibrate on; "
                        "give longer clips or change train.holdout_clips")  # fmt: skip
    for clip in clips:
        frames = load_clip_frames(clip, ex).astype(np.int16)
        motion = ex.cells(np.abs(np.diff(frames, axis=0))).mean(axis=(2, 3))  # what ``extract`` measures
        if ex.moving(motion).any():
            return
    raise UserError(f"no moving patch in the held-out clips ({', '.join(c.name for c in clips)}): cannot calibrate; "
                    "lower patches.motion_threshold or hold out clips with motion")  # fmt: skip


DATASET_FPS = 10.0  # frame rate a named dataset's frame folders are read at (Ped2's)


def split_for_training(dataset: Any, cfg: Config) -> tuple[list[Any], list[Any]]:
    """(training clips, held-out clips): recordings split by time when they were loaded, named datasets by
    their last ``train.holdout_clips`` clips (read at their own rate, so the analysis rate must be it)."""
    if hasattr(dataset, "holdout"):  # data.recordings.Recordings
        return dataset.training, dataset.holdout
    if cfg.patches.analysis_fps not in (0, DATASET_FPS):
        raise UserError(f"patches.analysis_fps={cfg.patches.analysis_fps:g}: dataset {dataset.name!r} is read at its "
                        f"{DATASET_FPS:g} fps; use {DATASET_FPS:g} (or train on its frames as recordings with --fps)")  # fmt: skip
    return split_clips(dataset, cfg.train.holdout_clips)


def footage_meta(dataset: Any, holdout: list[Any]) -> dict[str, Any]:
    """What the checkpoint records about the footage: for recordings their list and the held-out time span;
    for a named dataset the held-out clips."""
    if hasattr(dataset, "meta"):
        return dataset.meta()
    return {"holdout": {"by": "clips", "clips": [c.name for c in holdout]}}
