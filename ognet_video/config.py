"""Typed configuration: dataclass defaults, YAML presets, and ``key=value`` command-line overrides.

Every run stores its resolved config in the checkpoint metadata, so a scorer never has to guess how
the model it loads was trained.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ognet_video.errors import UserError

FLOW_PRESETS = ("ultrafast", "fast", "medium", "full")
CHANNELS = ("gray", "gray+diff", "diff", "fg+diff", "flow", "gray+flow", "diff+flow", "fg+flow")


@dataclass
class PatchConfig:
    """How a frame becomes patches. 240x360 Ped2 frames are resized to 225x360: a 5x8 grid of 45x45."""

    size: int = 45
    height: int = 225  # frames are resized to (height, width) before gridding
    width: int = 360
    stride: int = 45  # == size: non-overlapping grid, as in the paper
    motion_threshold: float = 2.0  # mean |frame difference| (gray levels, 0-255) for a patch to count as moving
    # "gray" (paper), "gray+diff" (plus the frame difference), "diff" (motion only), "fg+diff" (frame minus
    # the fixed background estimated from training frames, plus the frame difference), "flow" (dense optical
    # flow from the previous frame, x and y: two channels), and the combinations in CHANNELS
    channels: str = "gray"
    diff_gain: float = 1.0  # the diff channel is clamp(gain * diff / 127.5, -1, 1): >1 stretches small motions
    flow_scale: float = 4.0  # the flow channels are clamp(flow / flow_scale, -1, 1): pixels per frame at +-1
    # OpenCV DIS preset at 232x348: "ultrafast" (~1 ms per frame; flow solved at 1/4 resolution, blobs),
    # "fast" (~2 ms; adds variational refinement), "medium" (~11 ms; solved at 1/2 resolution: one flow
    # field per walker instead of one per group, the Ped2 default), "full" (medium solved at full resolution,
    # ~36 ms)
    flow_preset: str = "ultrafast"
    # flow is measured from frame t - flow_step to t and divided by flow_step (still pixels per frame): Ped2's
    # walkers move under 1 px per frame, so a two-frame baseline doubles the displacement DIS has to resolve
    flow_step: int = 1


@dataclass
class ModelConfig:
    """Network widths. ``preset`` names the architecture family a checkpoint belongs to."""

    preset: str = "cpu"  # "cpu", "paper" or "custom"
    g_arch: str = "strided"  # "paper" (stride 1, no padding) or "strided" (two stride-2 stages)
    g_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    d_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    d_norm: str = "batch"  # "batch" (paper) or "none"


@dataclass
class TrainConfig:
    """Two-phase OGNet training. Defaults follow the method doc; see ``docs`` in README for choices."""

    epochs: int = 4  # phase-one epochs; G_n and D are taken after the last one
    batch_size: int = 64
    lr_g: float = 1e-3
    lr_d: float = 1e-4
    noise_std: float = 0.81
    phase2_steps: int = 75
    phase2_lr: float = 5e-5
    skip_frames: list[int] = field(default_factory=list)  # phase two: also treat G_n of "too fast" patches
    # (frame difference or flow taken k frames apart, k in this list; needs a diff or flow channel) as bad. [] = paper
    skip_weight: float = 1.0
    # share of those twins replaced by "rigid" twins (flow channels only): a normal patch whose moving pixels all
    # take the patch's mean flow, i.e. something gliding (board, bike, cart) instead of walking. 0 = none
    rigid_twins: float = 0.0
    # share of the training patches (and of their frame-skip twins) mirrored left-right, flow's x negated: the
    # walkway is crossed both ways, so a mirrored walker is still a normal walker. 0 = none
    mirror: float = 0.0
    # how D's BatchNorm sees phase two: "separate" (the authors: each of the D calls is normalised on its own
    # batch, so a difference between good and bad batches is normalised away), "frozen" (phase one's running
    # statistics, as at test time) or "joint" (one D call over good and bad together)
    phase2_norm: str = "separate"
    # decay of an exponential moving average of G's weights over phase one (0 = off). The average, not the last
    # step's G, becomes G_old (after epoch 1) and G_n: what phase two and scoring see
    phase1_ema: float = 0.0
    # decay of an exponential moving average of D's weights over phase two (0 = off: D as the last step left it).
    # Phase two is noisy: the same phase-one networks give test AUCs a point apart depending on where it stops
    phase2_ema: float = 0.0
    max_patches: int = 0  # cap on training patches (0 = all moving patches), sampled with the seed
    # extra training grids shifted by (dy, dx) for every dy, dx in this list, e.g. [0, 15, 30] = 9 grids
    # (the unshifted one included); [] = the scoring grid only. Keeps G from memorising each cell's background
    grid_offsets: list[int] = field(default_factory=list)
    holdout_clips: int = 2  # last N normal training clips are held out for calibration
    seed: int = 0
    # independently trained (G, D) pairs whose patch scores are averaged; member i uses seed + 1000 * i, so
    # member 0 is the one-member model of the same seed. Costs N x the training and the model's scoring time
    members: int = 1
    num_threads: int = 0  # torch CPU threads (0 = torch default)


@dataclass
class ScoreConfig:
    """How patch scores become calibrated frame decisions."""

    output: str = "logit"  # "logit" (D's pre-sigmoid value) or "prob" (the paper's sigmoid)
    aggregate: str = "max"  # "max" or "topk" (mean of the k highest moving patches)
    topk: int = 3
    causal_window: int = 9  # trailing mean over the last N frames: what a live stream can do
    offline_window: int = 9  # centred mean over N frames: uses future frames, offline reports only
    threshold_percentile: float = 99.0  # of smoothed, normalised held-out normal frame scores
    event_frames: int = 3  # an event opens after k frames above threshold and closes after k below
    batch_frames: int = 16  # frames scored per forward pass offline


@dataclass
class Config:
    patches: PatchConfig = field(default_factory=PatchConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        cfg = cls()
        apply_dict(cfg, data, source)
        return cfg


def _coerce(value: Any, current: Any, key: str, source: str) -> Any:
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise UserError(f"{source}: {key} must be true or false, got {value!r}")
        return bool(value)
    try:
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, list):
            if isinstance(value, str):
                value = yaml.safe_load(value)
            return [type(current[0])(v) for v in value] if current else list(value)
    except (TypeError, ValueError):
        raise UserError(f"{source}: {key} expects {type(current).__name__}, got {value!r}") from None
    return str(value)


def apply_dict(cfg: Config, data: dict[str, Any], source: str) -> None:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of sections (patches, model, train, score)")
    for section, values in data.items():
        sub = getattr(cfg, section, None)
        if sub is None or not dataclasses.is_dataclass(sub):
            raise UserError(f"{source}: unknown section {section!r}; use patches, model, train or score")
        if not isinstance(values, dict):
            raise UserError(f"{source}: section {section!r} must be a mapping")
        for key, value in values.items():
            set_value(cfg, f"{section}.{key}", value, source)


def set_value(cfg: Config, dotted: str, value: Any, source: str = "override") -> None:
    parts = dotted.split(".")
    if len(parts) != 2:
        raise UserError(f"{source}: {dotted!r} is not of the form section.key (e.g. train.epochs=3)")
    section, key = parts
    sub = getattr(cfg, section, None)
    if sub is None or not dataclasses.is_dataclass(sub) or key not in {f.name for f in dataclasses.fields(sub)}:
        raise UserError(f"{source}: unknown setting {dotted!r}")
    setattr(sub, key, _coerce(value, getattr(sub, key), dotted, source))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file, then ``section.key=value`` overrides, in that order."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {p} (see configs/ for presets)")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
        apply_dict(cfg, data, str(p))
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like section.key=value (e.g. train.epochs=3)")
        key, value = item.split("=", 1)
        try:
            parsed = yaml.safe_load(value) if value else value
        except yaml.YAMLError:
            raise UserError(f"override {item!r}: value is not valid YAML (lists look like [4,8,8,8])") from None
        set_value(cfg, key.strip(), parsed)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    p = cfg.patches
    if p.size < 8 or p.stride < 1 or p.height < p.size or p.width < p.size:
        raise UserError("patches: size must be >= 8 and fit inside height x width")
    if p.channels not in CHANNELS:
        raise UserError(f"patches.channels must be one of {', '.join(CHANNELS)}; got {p.channels!r}")
    if cfg.model.d_norm not in ("batch", "none"):
        raise UserError(f"model.d_norm must be 'batch' or 'none', got {cfg.model.d_norm!r}")
    if cfg.model.g_arch not in ("paper", "strided"):
        raise UserError(f"model.g_arch must be 'paper' or 'strided', got {cfg.model.g_arch!r}")
    if cfg.model.preset not in ("cpu", "paper", "custom"):
        raise UserError(f"model.preset must be 'cpu', 'paper' or 'custom', got {cfg.model.preset!r}")
    if len(cfg.model.g_channels) != 4 or len(cfg.model.d_channels) != 4:
        raise UserError("model.g_channels and model.d_channels need 4 widths each")
    if cfg.score.output not in ("logit", "prob"):
        raise UserError(f"score.output must be 'logit' or 'prob', got {cfg.score.output!r}")
    if cfg.score.aggregate not in ("max", "topk"):
        raise UserError(f"score.aggregate must be 'max' or 'topk', got {cfg.score.aggregate!r}")
    if cfg.model.g_arch == "strided" and p.size % 4 != 1:
        raise UserError(f"patches.size={p.size}: the strided generator needs size % 4 == 1 (e.g. 45 or 33)")
    if cfg.train.skip_frames and "diff" not in p.channels and "flow" not in p.channels:
        raise UserError("train.skip_frames needs a motion channel (patches.channels with diff or flow)")
    if p.flow_preset not in FLOW_PRESETS:
        raise UserError(f"patches.flow_preset must be one of {', '.join(FLOW_PRESETS)}; got {p.flow_preset!r}")
    if not 1 <= p.flow_step <= 8:
        raise UserError(f"patches.flow_step must be 1-8 frames, got {p.flow_step}")
    if p.flow_scale <= 0:
        raise UserError("patches.flow_scale must be > 0 (pixels per frame that map to 1.0)")
    if cfg.train.phase2_norm not in ("separate", "frozen", "joint"):
        raise UserError(f"train.phase2_norm must be 'separate', 'frozen' or 'joint', got {cfg.train.phase2_norm!r}")
    if any(not 0 <= o < p.stride for o in cfg.train.grid_offsets):
        raise UserError(f"train.grid_offsets must lie in [0, patches.stride={p.stride})")
    for name in ("rigid_twins", "mirror"):
        share = getattr(cfg.train, name)
        if not 0.0 <= share <= 1.0:
            raise UserError(f"train.{name} must be a share between 0 and 1, got {share}")
    if cfg.train.rigid_twins and not (cfg.train.skip_frames and "flow" in p.channels.split("+")):
        raise UserError(
            "train.rigid_twins replaces frame-skip twins of flow patches: set train.skip_frames and a flow channel"
        )
    for key in ("phase1_ema", "phase2_ema"):
        if not 0.0 <= getattr(cfg.train, key) < 1.0:
            raise UserError(f"train.{key} must be a decay in [0, 1), got {getattr(cfg.train, key)}")
    if any(k < 2 for k in cfg.train.skip_frames):
        raise UserError("train.skip_frames entries must be >= 2 (1 is the normal frame step)")
    if cfg.train.members < 1:
        raise UserError(f"train.members must be >= 1, got {cfg.train.members}")
    if cfg.train.holdout_clips < 1:
        raise UserError("train.holdout_clips must be >= 1: held-out normal clips calibrate the threshold")
    if cfg.train.epochs < 1 or cfg.train.batch_size < 2:
        raise UserError("train.epochs must be >= 1 and train.batch_size >= 2")
