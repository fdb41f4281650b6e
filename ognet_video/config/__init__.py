"""Typed configuration: pydantic models, YAML presets and ``section.key=value`` command-line overrides.

The defaults are the Ped2 CPU recipe (configs/ped2-cpu.yaml spells the same values out), so a run without
``--config`` trains it. Every run stores its resolved config in the checkpoint metadata, so a scorer never
has to guess how the model it loads was trained. ``schema``: the sections and their rules; ``load``: files,
overrides and the one-line errors.
"""

from ognet_video.config.load import (
    RUNTIME_KEYS,
    apply_runtime_overrides,
    load_config,
    parse_override,
    set_value,
    validate,
)
from ognet_video.config.schema import (
    FLOW_PRESETS,
    MODEL_PRESETS,
    RETIRED,
    SECTIONS,
    WHOLE_FRAME,
    Config,
    HealthConfig,
    ModelConfig,
    ObjectConfig,
    PatchConfig,
    ScoreConfig,
    TrainConfig,
)

__all__ = [
    "FLOW_PRESETS", "MODEL_PRESETS", "RETIRED", "RUNTIME_KEYS", "SECTIONS", "WHOLE_FRAME", "Config", "HealthConfig",
    "ModelConfig", "ObjectConfig", "PatchConfig", "ScoreConfig", "TrainConfig", "apply_runtime_overrides",
    "load_config", "parse_override", "set_value", "validate",
]  # fmt: skip
