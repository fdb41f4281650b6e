"""Settings for the offline demo: a tiny model that trains on synthetic clips in a minute or two."""

from __future__ import annotations

from ognet_video.config import Config


def demo_config(seed: int = 0) -> Config:
    cfg = Config()
    cfg.model.preset = "custom"
    cfg.model.g_arch = "strided"
    cfg.model.g_channels = [8, 16, 32, 32]
    cfg.model.d_channels = [8, 16, 32, 32]
    cfg.patches.channels = "gray+diff"  # as configs/ped2-cpu-diff.yaml
    cfg.patches.diff_gain = 4.0
    cfg.train.skip_frames = [2, 3, 4]
    cfg.score.aggregate = "topk"
    cfg.score.topk = 2
    cfg.train.epochs = 8  # short runs undertrain: 3 epochs gave 0.71 causal AUC here, 8 give 0.86
    cfg.train.max_patches = 4000
    cfg.train.phase2_steps = 100
    cfg.train.holdout_clips = 1
    cfg.train.seed = seed
    return cfg
