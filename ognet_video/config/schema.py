"""The configuration's schema: one pydantic model per section, their defaults, and the rules between settings.

The defaults are the Ped2 CPU recipe (configs/ped2-cpu.yaml spells the same values out), so a run without
``--config`` trains it. Every run stores its resolved config in the checkpoint metadata, so a scorer never
has to guess how the model it loads was trained.

Values are checked when they are read (types, choices, ranges, and the rules between settings), before any
work starts; a bad one is a ``UserError`` of one line naming where it came from (the YAML file or
"override"), the key, the value and what is allowed. Assigning to a section (``cfg.train.epochs = 8``) is
checked too; the rules between sections are checked again by ``validate`` and at the start of training.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ognet_video.errors import UserError

# A named preset fixes the generator's architecture and both networks' widths (``model.resolve_model_config``);
# "custom" keeps what the config says.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"g_arch": "paper", "g_channels": [64, 128, 256, 512], "d_channels": [64, 128, 256, 512]},
    "cpu": {"g_arch": "strided", "g_channels": [16, 32, 64, 64], "d_channels": [16, 32, 64, 64]},
}

# Options that were removed, each with the value that is now the only behaviour. Only checkpoints written
# before the removal carry them: ``upgrade_checkpoint_config`` drops them (see there).
RETIRED: dict[str, Any] = {
    "patches.diff_gain": None,  # any value: only the removed frame-difference channels read it
    "patches.flow_step": 1,
    "train.grid_offsets": [],
    "train.rigid_twins": 0.0,
    "train.mirror": 0.0,
    "train.phase1_ema": 0.0,
    "train.skip_weight": 1.0,
    "train.crowd_copies": 0,
    "score.output": "logit",
}


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):  # YAML's true/false would otherwise pass as 1/0
        raise PydanticCustomError("number_type", "must be a number, not true/false")
    return value


WHOLE_FRAME = (0.0, 0.0, 1.0, 1.0)  # ``patches.crop`` that keeps all of the frame

Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]
Channels = Literal["gray", "flow"]
FlowPreset = Literal["fast", "medium"]
FLOW_PRESETS: tuple[str, ...] = get_args(FlowPreset)
Widths = Annotated[list[Annotated[Int, Field(gt=0)]], Field(min_length=4, max_length=4)]
Point = Annotated[list[Annotated[Float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)]


def _rule(key: str, value: Any, why: str, *involved: str) -> PydanticCustomError:
    """A broken rule between settings: ``key`` (holding ``value``) is the one reported, ``involved`` the others
    the rule reads."""
    ctx = {"key": key, "value": value, "why": why, "involved": (key, *involved)}
    return PydanticCustomError("config_rule", "{why}", ctx)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    section: ClassVar[str]


class PatchConfig(_Section):
    """How a frame becomes patches: gray, resized to ``height x width``, cut into ``size x size`` cells."""

    section: ClassVar[str] = "patches"

    # cells every 29 px (one Ped2 pedestrian), each seen alone (size == stride, the paper's non-overlapping grid):
    # an 8 x 12 grid on 232x348. configs/ped2-large.yaml sees each as a 45 px patch with 8 px of its neighbours
    size: Int = Field(29, ge=8)
    height: Int = Field(232, ge=1, le=4096)  # frames are resized to (height, width) before gridding
    width: Int = Field(348, ge=1, le=4096)
    stride: Int = Field(29, ge=1)
    motion_threshold: Float = Field(2.0, ge=0)  # mean |frame difference| (gray levels, 0-255) for a moving cell
    # "flow": dense optical flow from the previous frame, x and y (two planes); "gray": the cell itself (the paper)
    channels: Channels = "flow"
    flow_scale: Float = Field(4.0, gt=0)  # the flow planes are clamp(flow / flow_scale, -1, 1): px per frame at +-1
    # OpenCV DIS at 248x364: "medium" (~11 ms per frame, solved at half resolution: one flow field per walker)
    # or "fast" (~2 ms, a quarter of the resolution: faster, coarser)
    flow_preset: FlowPreset = "medium"
    # motion is measured between frames this many per second apart, resampled from the source's timestamps
    # (10 = Ped2's rate; 0 = every frame, as checkpoints from before this setting do)
    analysis_fps: Float = Field(10.0, ge=0, le=1000)
    # training from recordings fits width to the footage's aspect ratio at this height (rounded to the cell
    # grid); false: frames are resized to height x width whatever their shape. Named datasets keep height x width
    keep_aspect: bool = True
    # the part of the source frame that is analysed, [x0, y0, x1, y1] in fractions of its width and height; training
    # from recordings sets it to the picture inside black bars (letterbox/pillarbox) when ``crop_bars`` is true
    crop: list[Annotated[Float, Field(ge=0, le=1)]] = Field(default_factory=lambda: list(WHOLE_FRAME),
                                                            min_length=4, max_length=4)  # fmt: skip
    crop_bars: bool = True
    # cells that are neither trained on nor scored: indices into the row-major grid (``train --mask`` writes
    # them), and polygons of [x, y] points in fractions of the source frame's width and height (0-1)
    ignore_cells: list[Annotated[Int, Field(ge=0)]] = Field(default_factory=list)
    ignore_polygons: list[Annotated[list[Point], Field(min_length=3)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fits(self) -> PatchConfig:
        if self.size > self.height or self.size > self.width:
            raise _rule("patches.size", self.size, f"must fit inside height x width ({self.height} x {self.width})",
                        "patches.height", "patches.width")  # fmt: skip
        x0, y0, x1, y1 = self.crop
        if not (x0 < x1 and y0 < y1):
            raise _rule("patches.crop", self.crop, "must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1 (fractions)")
        cells = ((self.height - self.size) // self.stride + 1) * ((self.width - self.size) // self.stride + 1)
        if any(c >= cells for c in self.ignore_cells):
            raise _rule("patches.ignore_cells", max(self.ignore_cells), f"the grid has {cells} cells (0-{cells - 1})",
                        "patches.height", "patches.width", "patches.size", "patches.stride")  # fmt: skip
        return self


class ModelConfig(_Section):
    """Network widths. ``preset`` names the architecture family a checkpoint belongs to."""

    section: ClassVar[str] = "model"

    preset: Literal["cpu", "paper", "custom"] = "cpu"  # a named preset fixes the next three settings
    g_arch: Literal["paper", "strided"] = "strided"  # "paper" (stride 1, no padding) or two stride-2 stages
    g_channels: Widths = Field(default_factory=lambda: [16, 32, 64, 64])
    d_channels: Widths = Field(default_factory=lambda: [16, 32, 64, 64])
    d_norm: Literal["batch", "none"] = "batch"  # "batch" (paper) or "none"

    @property
    def arch(self) -> str:
        """The generator architecture this config builds (the preset's, unless the preset is "custom")."""
        return MODEL_PRESETS[self.preset]["g_arch"] if self.preset in MODEL_PRESETS else self.g_arch


class TrainConfig(_Section):
    """Two-phase OGNet training."""

    section: ClassVar[str] = "train"

    epochs: Int = Field(3, ge=1)  # phase-one epochs; G_n and D are taken after the last one
    batch_size: Int = Field(64, ge=2)
    lr_g: Float = Field(1e-3, gt=0)
    lr_d: Float = Field(1e-4, gt=0)
    noise_std: Float = Field(0.5, ge=0)  # the authors' 0.81 swamps flow values of ~0.25
    phase2_steps: Int = Field(600, ge=1)
    phase2_lr: Float = Field(1e-4, gt=0)
    # phase two also treats G_n of "too fast" patches as bad: the patch's flow taken k frames apart, k in this
    # list (needs the flow channel). [] = the paper
    skip_frames: list[Annotated[Int, Field(ge=2)]] = Field(default_factory=lambda: [2, 3, 4])
    # how D's BatchNorm sees phase two: "frozen" (phase one's running statistics, as at test time) or "separate"
    # (the authors: each D call is normalised on its own batch, so a difference between good and bad batches
    # is normalised away)
    phase2_norm: Literal["separate", "frozen"] = "frozen"
    # decay of an exponential moving average of D's weights over phase two (0 = off: D as the last step left it)
    phase2_ema: Float = Field(0.99, ge=0, lt=1)
    max_patches: Int = Field(16000, ge=0)  # cap on training patches (0 = all moving patches), sampled with the seed
    holdout_clips: Int = Field(2, ge=1)  # named datasets: the last N normal training clips are held out for calibration
    # recordings: the last part in time is held out for calibration: this fraction of the footage, or
    # holdout_seconds of it when that is > 0
    holdout_fraction: Float = Field(0.15, gt=0, lt=1)
    holdout_seconds: Float = Field(0.0, ge=0)
    seed: Int = Field(0, ge=0)
    # independently trained (G, D) pairs whose patch scores are averaged; member i uses seed + 1000 * i, so
    # member 0 is the one-member model of the same seed. Costs N x the training and the model's scoring time
    # (configs/ped2-large.yaml trains 2; the default 1 keeps up with four live cameras on 2 cores)
    members: Int = Field(1, ge=1)
    num_threads: Int = Field(0, ge=0)  # torch CPU threads (0 = torch default)

    @model_validator(mode="after")
    def _cap(self) -> TrainConfig:
        if 0 < self.max_patches < self.batch_size:
            raise _rule("train.max_patches", self.max_patches, f"must be 0 (all) or at least train.batch_size={self.batch_size}",
                        "train.batch_size")  # fmt: skip
        return self


class ScoreConfig(_Section):
    """How patch scores become calibrated frame decisions. A patch score is D's logit."""

    section: ClassVar[str] = "score"

    # "max" over the moving patches (the paper; chosen over top-2 by the label-free validation protocol) or
    # "topk" (the mean of the ``topk`` highest)
    aggregate: Literal["max", "topk"] = "max"
    topk: Int = Field(2, ge=1)
    # the max of many moving cells is higher than the max of few by chance alone: subtract that rise (the slope of
    # held-out normal frame scores on the log of their moving cells, fitted at calibration), so that a crowded
    # normal frame is not flagged for being crowded (on in configs/ped2-large.yaml; on the default's 29 px cells the
    # label-free validation protocol did not pick it, docs/experiments.md section 20)
    crowd_correction: bool = False
    causal_window: Int = Field(5, ge=1)  # trailing mean over the last N frames: what a live stream can do
    offline_window: Int = Field(9, ge=1)  # centred mean over N frames: uses future frames, offline reports only
    # the decision: the threshold at which held-out normal footage is expected to raise this many false alarms
    # per hour (a tail fit through the smoother and event tracker; calibration.py). 0: the threshold is the
    # threshold_percentile of its smoothed, normalised frame scores instead (the rule before this setting)
    alarms_per_hour: Float = Field(1.0, ge=0, le=3600)
    threshold_percentile: Float = Field(99.0, gt=0, le=100)
    event_frames: Int = Field(3, ge=1)  # an event opens after k frames above threshold and closes after k below
    batch_frames: Int = Field(16, ge=1)  # frames scored per forward pass offline


class HealthConfig(_Section):
    """Camera health (``ognet_video.health``): the checks that tell when a camera no longer sees its scene.

    Thresholds come from the training (or ``calibrate``) footage's ranges with these margins; none of these
    settings touches the scores, so any of them can be changed at scoring time (``health.frozen=false``)."""

    section: ClassVar[str] = "health"

    enabled: bool = True  # all checks; off: no camera events, decisions never suspended
    covered: bool = True  # most of the normally textured picture lost its texture (hand, tape, paint)
    moved: bool = True  # the static background no longer lines up with the stored one
    blurred: bool = True  # fine detail far below the footage's least
    brightness: bool = True  # too dark or too bright for the footage's range
    frozen: bool = True  # the same picture for frozen_seconds
    silent: bool = True  # a live source delivering nothing for silent_seconds
    persist_seconds: Float = Field(1.0, ge=0, le=60)  # a reason must hold this long to raise (and be gone to end)
    covered_share: Float = Field(0.4, gt=0, le=1)  # share of the textured picture gone flat that is "covered"
    moved_shift: Float = Field(0.02, gt=0, le=1)  # background offset, share of the width (2%: 7 px of 360)
    match_ratio: Float = Field(0.5, ge=0, le=1)  # edge correlation below this share of the footage's least: moved
    blur_ratio: Float = Field(0.5, gt=0, le=1)  # sharpness below this share of the footage's least: blurred
    brightness_margin: Float = Field(0.5, ge=0, le=1)  # dark below (1 - m) x the least; bright m of the way to 255
    frozen_seconds: Float = Field(1.0, gt=0, le=3600)  # at least; twice the footage's longest still run if longer
    silent_seconds: Float = Field(5.0, gt=0, le=3600)  # wall clock without a frame from a live source


class ObjectConfig(_Section):
    """The object cue (``ognet_video.objects``): moving regions of the flow judged against the training footage's
    objects at the same place, fused with the patch score (the larger of the two, in the same units)."""

    section: ClassVar[str] = "objects"

    enabled: bool = False  # off: the patch score alone (every model from before the cue)
    min_flow: Float = Field(0.4, gt=0, le=20)  # px per interval on a 232 px high grid (scaled to the patches grid)
    min_area: int = Field(60, ge=1, le=100000)  # px on a 232 px high grid (scaled): smaller moving regions are noise
    neighbors: int = Field(5, ge=1, le=100)  # an object's score: mean distance to its nearest normal objects
    max_reference: int = Field(20000, ge=100, le=1000000)  # normal objects kept (a fixed-seed sample beyond)


SECTIONS: dict[str, type[_Section]] = {
    "patches": PatchConfig, "model": ModelConfig, "train": TrainConfig, "score": ScoreConfig, "health": HealthConfig,
    "objects": ObjectConfig,
}  # fmt: skip


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    patches: PatchConfig = Field(default_factory=PatchConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    objects: ObjectConfig = Field(default_factory=ObjectConfig)

    @model_validator(mode="after")
    def _between_sections(self) -> Config:
        p = self.patches
        if self.model.arch == "strided" and p.size % 4 != 1:
            raise _rule("patches.size", p.size, "the strided generator needs size % 4 == 1 (e.g. 29, 33 or 45)",
                        "model.g_arch", "model.preset")  # fmt: skip
        if self.train.skip_frames and p.channels != "flow":
            raise _rule("train.skip_frames", self.train.skip_frames, f"needs patches.channels=flow (got {p.channels!r}); use [] otherwise",
                        "patches.channels")  # fmt: skip
        if self.objects.enabled and p.channels != "flow":
            raise _rule("objects.enabled", True, f"the object cue reads the optical flow: needs patches.channels=flow "
                        f"(got {p.channels!r})", "patches.channels")  # fmt: skip
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> Config:
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a mapping of sections ({', '.join(SECTIONS)})")
        return build(data, {}, source)


# ------------------------------------------------------------------------------------------------ errors


def _lookup(data: dict[str, Any], key: str) -> Any:
    section, _, name = key.partition(".")
    values = data.get(section)
    return values.get(name, "?") if isinstance(values, dict) else values


def _reason(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in ("too_short", "too_long"):
        return f"needs exactly {ctx.get('min_length', ctx.get('max_length'))} values"
    msg = err["msg"].removeprefix("Value error, ")
    msg = msg.replace("Input should be", "must be").replace("List should", "must")
    return msg[:1].lower() + msg[1:]


def unknown_key(key: str) -> str:
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        return f"unknown section {section!r}; use {', '.join(SECTIONS)}"
    if key in RETIRED:
        return f"unknown setting {key!r}: the option was removed (see docs/experiments.md)"
    names = [f"{section}.{n}" for n in SECTIONS[section].model_fields]
    close = difflib.get_close_matches(key, names, n=1)
    return f"unknown setting {key!r}" + (f"; did you mean {close[0]}?" if close else "")


def user_error(exc: ValidationError, data: dict[str, Any], sources: dict[str, str], default: str,
                section: str | None = None) -> UserError:  # fmt: skip
    """The first error of a pydantic validation as one line: where, which key, which value, what is allowed."""
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    if section is not None:  # an assignment to one section: its locations lack the section
        loc = (section, *loc)
    if err["type"] == "config_rule":
        key = err["ctx"]["key"]
        # blame whoever set one of the settings the rule reads last (overrides are applied after the file)
        set_by = [sources[k] for k in err["ctx"]["involved"] if k in sources]
        where = "override" if "override" in set_by else (set_by[0] if set_by else default)
        return UserError(f"{where}: {key}={err['ctx']['value']!r}: {err['msg']}")
    key = ".".join(loc[:2])
    where = sources.get(key, sources.get(loc[0], default)) if loc else default
    if err["type"] == "extra_forbidden":
        return UserError(f"{where}: {unknown_key(key)}")
    if len(loc) == 1 and err["type"] == "model_type":
        return UserError(f"{where}: section {loc[0]!r} must be a mapping of key: value")
    item = f"item {loc[2]} " if len(loc) > 2 else ""  # one entry of a list
    return UserError(f"{where}: {key}={_lookup(data, key)!r}: {item}{_reason(err)}")


def build(data: dict[str, Any], sources: dict[str, str], default: str) -> Config:
    """``data`` checked into a ``Config``; a bad value is one ``UserError`` naming its source (``sources`` per key,
    else ``default``)."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise user_error(exc, data, sources, default) from None
