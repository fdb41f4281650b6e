"""The cameras of a ``watch`` run: sources named on the command line and YAML files of cameras.

A cameras file is a list (or a ``cameras:`` list) of entries with ``name`` and ``url`` and, optionally,
``stride`` and ``fps``; ``mask`` is not applied by ``watch`` and is ignored with a warning. Every camera
gets a unique name: its folder in the run and its id in every message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from ognet_video.errors import UserError, yaml_problem
from ognet_video.paths import plain_name
from ognet_video.sources import source_name

YAML_EXTS = (".yaml", ".yml")
KEYS = {"name", "url", "stride", "fps", "mask"}


@dataclass
class Camera:
    name: str
    url: str
    stride: int | None = None  # None: the command's --stride
    fps: float | None = None  # None: the command's --fps


def is_cameras_file(spec: str) -> bool:
    return spec.lower().endswith(YAML_EXTS)


def read_cameras(path: Path, log: Callable[[str], None] | None = None) -> list[Camera]:
    """The cameras of a YAML file; UserError (one line) for a file that is not one."""
    log = log or (lambda msg: None)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"cameras file {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise UserError(f"cameras file {str(path)!r} is not valid YAML: {yaml_problem(exc)}") from None
    entries = doc.get("cameras") if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise UserError(f"cameras file {str(path)!r}: give a list of cameras (name, url, optional stride and fps)")
    return [_camera(e, i, path, log) for i, e in enumerate(entries, 1)]


def _camera(entry: object, i: int, path: Path, log: Callable[[str], None]) -> Camera:
    where = f"cameras file {str(path)!r}, camera {i}"
    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), (str, int)):
        raise UserError(f"{where}: give at least a url (and a name)")
    if extra := sorted(set(entry) - KEYS):
        raise UserError(f"{where}: unknown key(s) {', '.join(map(str, extra))}; known: {', '.join(sorted(KEYS))}")
    url = str(entry["url"])
    base = str(entry.get("name") or source_name(url))
    if not re.fullmatch(r"[\w.@-]+", base) or set(base) == {"."}:
        raise UserError(f"{where}: name {base!r} must be letters, digits, '.', '-', '_' or '@' (not only dots: "
                        "it names the camera's folder in the run)")  # fmt: skip
    if entry.get("mask"):
        log(f"{base}: mask is not applied by watch (the model's own ignore regions are); ignoring it")
    stride, fps = entry.get("stride"), entry.get("fps")
    if stride is not None and (not isinstance(stride, int) or isinstance(stride, bool) or stride < 1):
        raise UserError(f"{where}: stride must be a whole number of 1 or more, got {stride!r}")
    if fps is not None and (not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 1000):
        raise UserError(f"{where}: fps must be a number above 0, got {fps!r}")
    return Camera(base, url, stride, None if fps is None else float(fps))


def cameras_from_args(specs: list[str | Camera], log: Callable[[str], None] | None = None) -> list[Camera]:
    """Sources and cameras files -> cameras with unique names (a repeated name gets -2, -3, ...)."""
    cams: list[Camera] = []
    for spec in specs:
        if isinstance(spec, Camera):
            cams.append(spec)
        elif is_cameras_file(str(spec)):
            cams += read_cameras(Path(spec), log)
        else:
            name = re.sub(r"[^\w.@-]+", "_", source_name(str(spec))).strip(".") or "camera"  # never '.' or '..'
            cams.append(Camera(name, str(spec)))
    seen: dict[str, int] = {}
    for c in cams:
        plain_name(c.name, "camera name")  # the camera's folder in the run: never outside it
        n = seen[c.name] = seen.get(c.name, 0) + 1
        if n > 1:
            c.name = f"{c.name}-{n}"
    return cams
