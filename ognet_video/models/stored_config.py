"""A trained model's stored config (checkpoint or export metadata), as this version reads it.

Options removed since the model was written are dropped or refused (``upgrade_checkpoint_config``), and a named
preset must describe the networks stored with it (``check_preset``); ``stored_config`` does both and builds the
``Config`` every loader uses.
"""

from __future__ import annotations

import copy
from typing import Any

from ognet_video.config import FLOW_PRESETS, MODEL_PRESETS, RETIRED, Config, PatchConfig
from ognet_video.errors import UserError


def stored_config(data: Any, source: str) -> Config:
    """The ``Config`` of a model's stored ``data``, upgraded and checked; ``source`` names it in errors."""
    cfg = Config.from_dict(upgrade_checkpoint_config(data, source), source=source)
    check_preset(cfg, source)
    return cfg


def check_preset(cfg: Config, source: str) -> None:
    """A named preset in a checkpoint must describe the networks it holds: a label edited by hand (a small
    ``custom`` model relabelled ``paper``) would load, and be reported, as something it is not."""
    want = MODEL_PRESETS.get(cfg.model.preset)
    if want is None:
        return
    have = {k: getattr(cfg.model, k) for k in want}
    if have != want:
        diff = ", ".join(f"{k}={have[k]}" for k in want if have[k] != want[k])
        raise UserError(f"{source}: says preset {cfg.model.preset!r} but holds {diff}; the metadata was edited or "
                        "damaged (set model.preset to 'custom' or use the original file)")  # fmt: skip


def upgrade_checkpoint_config(data: Any, source: str) -> Any:
    """A checkpoint's stored config, readable by this version: options removed since it was written go.

    Training-only ones (``train.*``) go whatever their value: they shaped the weights but not how the weights
    score. A scoring option goes only if it holds the value that is now the only behaviour; otherwise the
    model needs retraining. A gray model's unused flow preset becomes the default. A model from before the
    analysis rate analyses every frame, as it did; one from before the alarm-rate rule says it was calibrated
    by the percentile (``score.alarms_per_hour`` 0), one from before the crowd correction without it, and one
    from before ensembles with one member.
    """
    if not isinstance(data, dict):
        return data
    data = copy.deepcopy(data)
    for key, now in RETIRED.items():
        section, _, name = key.partition(".")
        values = data.get(section)
        if not isinstance(values, dict) or name not in values:
            continue
        value = values.pop(name)
        if section != "train" and now is not None and value != now:
            raise UserError(f"{source}: {key}={value!r}: the model was trained with an option this version no "
                            f"longer has (only {now!r}); retrain it")  # fmt: skip
    score = data.get("score")
    if isinstance(score, dict) and "alarms_per_hour" not in score:  # calibrated before the alarm-rate rule
        score["alarms_per_hour"] = 0.0
    if isinstance(score, dict) and "crowd_correction" not in score:  # calibrated before it: recalibrates as it was
        score["crowd_correction"] = False
    train = data.get("train")
    if isinstance(train, dict) and "members" not in train:  # written before ensembles: one pair, resumed as one
        train["members"] = 1
    patches = data.get("patches")
    if isinstance(patches, dict) and "analysis_fps" not in patches:  # written before frames were resampled
        patches["analysis_fps"] = 0.0
    if isinstance(patches, dict) and patches.get("channels") == "gray" and "flow_preset" in patches:
        if patches["flow_preset"] not in FLOW_PRESETS:
            patches["flow_preset"] = PatchConfig.model_fields["flow_preset"].default
    return data
