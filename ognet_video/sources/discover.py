"""``score``'s inputs -> clips: video files, frame folders, folders of those, and globs of either.

A video file is a clip; a folder whose images form one clip is a clip; a folder is searched one level deep
for videos and frame folders (every level with ``recursive``); a glob's matches are classified the same
way (an image it matches stands for its folder; ``**`` matches any depth). Globs are recognised as
``sources`` recognises them.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ognet_video.errors import UserError
from ognet_video.paths import natural_path_key, special_file
from ognet_video.sources import IMAGE_EXTS, VIDEO_EXTS, ImageFiles, Source, VideoFile, image_files, is_glob

MAX_NAME = 96  # characters of a clip's output folder name; longer names are cut and given a hash


@dataclass(frozen=True, order=True)
class ClipInput:
    path: Path  # absolute
    kind: str  # "video" (a file) or "frames" (a folder whose images form one clip)

    def source(self, fps: float, log: Callable[[str], None] | None = None) -> Source:
        """The clip's reader; a folder is taken as a folder even when its name looks like a glob. ``log`` hears
        its warnings (a skipped frame)."""
        if self.kind == "video":
            return VideoFile(str(self.path), log=log)
        return ImageFiles(self.path, fps=fps, files=image_files(self.path), log=log)


def _hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _has_images(d: Path) -> bool:
    try:
        return any(e.is_file() and e.suffix.lower() in IMAGE_EXTS and not _hidden(e) for e in d.iterdir())
    except OSError:
        return False


def _skip_dir(d: Path, exclude: tuple[Path, ...]) -> bool:
    """Hidden folders, UCSD's ``*_gt`` mask folders and our own output folders are never clips."""
    return _hidden(d) or d.name.endswith("_gt") or any(d == e or e in d.parents for e in exclude)


def _scan_dir(top: Path, recursive: bool, exclude: tuple[Path, ...], others: list[Path]) -> list[ClipInput]:
    found: list[ClipInput] = []
    for root, dirs, files in os.walk(top):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not _skip_dir(here / d, exclude))
        names = [f for f in files if not f.startswith(".")]
        others += [here / f for f in names if Path(f).suffix.lower() not in IMAGE_EXTS | set(VIDEO_EXTS)]
        if any(Path(f).suffix.lower() in IMAGE_EXTS for f in names):
            found.append(ClipInput(here, "frames"))
        found += [ClipInput(here / f, "video") for f in names if Path(f).suffix.lower() in VIDEO_EXTS]
        if not recursive:
            found += [ClipInput(here / d, "frames") for d in dirs if _has_images(here / d)]
            break
    return found


def _classify(p: Path, recursive: bool, exclude: tuple[Path, ...], explicit: bool,
              others: list[Path]) -> list[ClipInput]:  # fmt: skip
    if p.is_dir():
        return [] if _skip_dir(p, exclude) and not explicit else _scan_dir(p, recursive, exclude, others)
    ext = p.suffix.lower()
    if ext in IMAGE_EXTS:  # a frame picked by a glob (or named) stands for its folder
        return [ClipInput(p.parent, "frames")]
    if ext in VIDEO_EXTS or explicit:  # a named file of another type is tried as a video
        return [ClipInput(p, "video")]
    return []


def discover(inputs: list[str], recursive: bool = False, exclude: list[Path] | None = None,
             log: Callable[[str], None] | None = None) -> list[ClipInput]:  # fmt: skip
    """Expand inputs into clips, each once, in natural path order (``rec2`` before ``rec10``: ``train``
    holds out the last recordings, so their order is their time). Files in searched folders that are neither
    videos nor images are left out, and ``log`` hears how many and of which types (a recording in an unknown
    container would otherwise vanish without a word)."""
    others: list[Path] = []
    if not inputs:
        raise UserError("no inputs: give video files, frame folders, folders of those or globs")
    ex = tuple(Path(os.path.abspath(e)) for e in (exclude or []))
    clips: set[ClipInput] = set()
    for spec in inputs:
        p = Path(os.path.abspath(os.path.expanduser(spec)))
        if what := special_file(p):
            raise UserError(f"input {spec!r} is {what}, not a video file or frame folder: give video files, frame "
                            "folders or globs")  # fmt: skip
        if p.exists():
            found = _classify(p, recursive, ex, True, others)
            if not found:
                hint = "" if recursive or not p.is_dir() else " (add --recursive to search deeper subfolders)"
                raise UserError(f"{spec!r} holds no videos or frame folders{hint}")
        elif is_glob(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            found = [c for m in matches for c in _classify(Path(os.path.abspath(m)), recursive, ex, False, others)]
            if not found:
                raise UserError(f"glob {spec!r} matched no videos or frame folders ({len(matches)} paths matched)")
        else:
            raise UserError(f"input {spec!r} does not exist: give video files, frame folders or globs")
        clips.update(ClipInput(Path(os.path.realpath(c.path)), c.kind) for c in found)
    if others and log is not None:
        exts = sorted({p.suffix.lower() or "(no extension)" for p in others})
        log(f"left out {len(others)} file(s) that are neither videos nor images ({', '.join(exts[:8])}); known "
            f"videos: {', '.join(sorted(VIDEO_EXTS))}: rename a recording to its container's extension to include it")
    return sorted(clips, key=lambda c: natural_path_key(c.path))


def _safe_name(name: str) -> str:
    """One plain, visible path component (a leading '.' would hide it, and '.tmp-*' is the run's own)."""
    name = re.sub(r"[^\w.\-]+", "_", name)
    if name.startswith(".") or not name:
        name = "_" + name
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest}"


def clip_names(clips: list[ClipInput]) -> list[str]:
    """Readable unique output names: the shortest tail of each path that no other clip shares."""
    parts = [c.path.parts[1:] or (c.path.name,) for c in clips]
    depth = [1] * len(clips)
    while True:
        names = ["__".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        seen: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            seen.setdefault(n, []).append(i)
        dup = [i for idx in seen.values() if len(idx) > 1 for i in idx if depth[i] < len(parts[i])]
        if not dup:
            return [_safe_name(n) for n in names]
        for i in dup:
            depth[i] += 1


def fingerprint(clip: ClipInput) -> tuple[int, int, int]:
    """(bytes, newest mtime in ns, files): a changed input is scored again."""
    if clip.kind == "video":
        st = clip.path.stat()
        return st.st_size, st.st_mtime_ns, 1
    files = image_files(clip.path)
    stats = [f.stat() for f in files]
    return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0), len(files)


def run_name(spec: str) -> str:
    """``runs/score/NAME-N`` is named after the first input's path up to its first glob part."""
    parts = Path(os.path.abspath(os.path.expanduser(spec))).parts
    plain = []
    for part in parts:
        if is_glob(part):
            break
        plain.append(part)
    stem = Path(plain[-1]).stem if len(plain) > 1 else ""
    return _safe_name(stem).strip("._-") or "score"
