"""Numbered run folders (runs/train/ped2-1, ped2-2, ...), as Ultralytics does."""

from __future__ import annotations

import re
from pathlib import Path

from ognet_video.errors import UserError


def _numbered(parent: Path, name: str) -> list[tuple[int, Path]]:
    if not parent.is_dir():
        return []
    pat = re.compile(rf"^{re.escape(name)}-(\d+)$")
    out = [(int(m.group(1)), p) for p in parent.iterdir() if p.is_dir() and (m := pat.match(p.name))]
    return sorted(out)


def new_run_dir(parent: Path, name: str) -> Path:
    """The next free ``parent/name-N``, created now so two runs never share it."""
    parent.mkdir(parents=True, exist_ok=True)
    n = (_numbered(parent, name)[-1][0] + 1) if _numbered(parent, name) else 1
    while True:
        p = parent / f"{name}-{n}"
        try:
            p.mkdir()
            return p
        except FileExistsError:
            n += 1


def latest_run_dir(parent: Path, name: str | None = None, need: str | None = None) -> Path:
    """The newest run folder (highest N), optionally named ``name-N`` and holding file ``need``."""
    if not parent.is_dir():
        raise UserError(f"no runs in {parent}: train a model first (ognet-video train ped2 --data DIR)")
    pat = re.compile(rf"^{re.escape(name)}-(\d+)$" if name else r"^.+-(\d+)$")
    cands = [p for p in parent.iterdir() if p.is_dir() and pat.match(p.name)]
    if need:
        cands = [p for p in cands if (p / need).is_file()]
    if not cands:
        what = f" with {need}" if need else ""
        raise UserError(f"no run{what} in {parent}: train a model first (ognet-video train ped2 --data DIR)")
    return max(cands, key=lambda p: (int(pat.match(p.name).group(1)), p.stat().st_mtime))  # type: ignore[union-attr]
