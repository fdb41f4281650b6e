"""Reading a configuration: YAML presets and ``section.key=value`` overrides, checked into a ``Config``, and the
one-line ``UserError`` naming the file or override, the key, the value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ognet_video.config.schema import SECTIONS, Config, build, unknown_key, user_error
from ognet_video.errors import UserError, yaml_problem

# ------------------------------------------------------------------------------------------------ reading


def _parse_key(dotted: str, source: str) -> tuple[str, str]:
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise UserError(f"{source}: {dotted!r} is not of the form section.key (e.g. train.epochs=3)")
    return parts[0], parts[1]


def set_value(cfg: Config, dotted: str, value: Any, source: str = "override") -> None:
    """Set one ``section.key`` of ``cfg``, checked like the rest of its section (not against other sections:
    ``validate`` does that once all values are in)."""
    section, key = _parse_key(dotted, source)
    if section not in SECTIONS or key not in SECTIONS[section].model_fields:
        raise UserError(f"{source}: {unknown_key(f'{section}.{key}')}")
    sub = getattr(cfg, section)
    old = getattr(sub, key)
    try:
        setattr(sub, key, value)
    except ValidationError as exc:
        sub.__dict__[key] = old  # a failed section rule leaves the new value in place: put the old one back
        raise user_error(exc, {section: {**sub.model_dump(), key: value}}, {}, source, section) from None


def validate(cfg: Config, source: str = "config") -> None:
    """Check every setting of ``cfg`` and the rules between them (after assignments to its sections)."""
    data = cfg.to_dict()
    build(data, {}, source)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file, then ``section.key=value`` overrides (YAML values), checked once at the end."""
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}  # "section.key" (or "section") -> the file or "override" that set it last
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {p} (see configs/ for presets)")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"config file {p} is not valid YAML: {yaml_problem(exc)}") from None
        if not isinstance(raw, dict):
            raise UserError(f"{p}: expected a mapping of sections ({', '.join(SECTIONS)})")
        for section, values in raw.items():
            data[section] = copy.deepcopy(values)
            sources[str(section)] = str(p)
            if isinstance(values, dict):
                sources.update({f"{section}.{key}": str(p) for key in values})
    for item in overrides or []:
        dotted, parsed = parse_override(item)
        section, key = _parse_key(dotted, "override")
        values = data.setdefault(section, {})
        if not isinstance(values, dict):
            raise UserError(f"{sources.get(section, 'config')}: section {section!r} must be a mapping of key: value")
        values[key] = parsed
        sources[f"{section}.{key}"] = "override"
        sources.setdefault(section, "override")
    return build(data, sources, "config")


def parse_override(item: str) -> tuple[str, Any]:
    """``section.key=value`` -> (``section.key``, the value read as YAML)."""
    if "=" not in item:
        raise UserError(f"override {item!r} must look like section.key=value (e.g. train.epochs=3)")
    dotted, value = item.split("=", 1)
    try:
        return dotted.strip(), yaml.safe_load(value) if value else value
    except yaml.YAMLError:
        raise UserError(f"override {item!r}: value is not valid YAML (lists look like [4,8,8,8])") from None


RUNTIME_KEYS = ("score.event_frames", "score.batch_frames")  # settings a calibrated threshold does not depend on


def apply_runtime_overrides(cfg: Config, overrides: list[str]) -> None:
    """Overrides a trained model allows at scoring time; the rest were fixed when its threshold was calibrated."""
    for item in overrides:
        key, value = parse_override(item)
        if key not in RUNTIME_KEYS and not key.startswith("health."):  # the camera checks never touch a score
            raise UserError(f"{key} is fixed when the model is trained (its threshold was calibrated with it); "
                            f"at scoring time only {', '.join(RUNTIME_KEYS)} and health.* can change")  # fmt: skip
        set_value(cfg, key, value)
