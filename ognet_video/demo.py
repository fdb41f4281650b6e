"""Settings for the offline demo: a tiny model that trains on synthetic clips in a minute or two."""

from __future__ import annotations

from ognet_video.config import Config


def demo_config(seed: int = 0) -> Config:
    cfg = Config()
    cfg.model.preset = "custom"
    cfg.model.g_arch = "strided"
    cfg.model.g_channels = [8, 16, 32, 32]
    cfg.model.d_channels = [8, 16, 32, 32]
    cfg.train.epochs = 3
    cfg.train.max_patches = 4000
    cfg.train.phase2_steps = 40
    cfg.train.holdout_clips = 1
    cfg.train.seed = seed
    return cfg
