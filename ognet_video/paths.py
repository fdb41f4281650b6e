"""One rule for every path the program writes: it lies inside the folder it belongs to.

Names that build output paths come from places a user (or anyone who can write to a shared run folder) controls:
``--name``, a cameras file, a clip's file name, the names recorded in ``manifest.jsonl``. Each is checked here,
once, before anything is created, moved or deleted: a name that would leave its folder (``..``, an absolute
path, a symlink pointing out) is refused with one line naming it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import TypeVar

from ognet_video.errors import UserError

_NUMBERED = re.compile(r"(\d+)")
T = TypeVar("T", str, Path, PurePath)


class OutsideError(UserError):
    """A path that would lead out of the folder it belongs to (never to be mistaken for a missing file)."""


def natural_key(text: str) -> tuple:
    """Sort key that orders digits by value: ``frame2`` before ``frame10`` (a plain sort reads 10 before 2).

    Ties (``01`` and ``1``) fall back to the plain text so the order is total and repeatable."""
    parts = _NUMBERED.split(text)
    key = tuple((0, int(p), "") if i % 2 else (1, 0, p.lower()) for i, p in enumerate(parts) if p != "")
    return key, text


def natural_path_key(path: str | PurePath) -> tuple:
    """``natural_key`` of each part of a path, so a folder's files stay together."""
    return tuple(natural_key(part) for part in PurePath(path).parts)


def natural_sorted(paths: Iterable[T]) -> list[T]:
    """``paths`` (strings or paths) in natural order: the one order every command reads frames and clips in."""
    return sorted(paths, key=lambda p: natural_path_key(str(p)))


def special_file(path: str | Path) -> str | None:
    """What ``path`` is when it exists but is not a regular file or folder ("a FIFO (named pipe)", "a character
    device", ...), else None. Reading such a file can block forever (a FIFO) or never end (/dev/zero), so the
    commands that read recordings open only regular files, and say why they did not."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return what
    return None


def plain_name(name: str, what: str) -> str:
    """``name`` if it is one plain path component (not empty, ``.``, ``..``, absolute or with a separator)."""
    text = str(name)
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if not text or set(text) == {"."} or any(s in text for s in seps) or "\0" in text:
        raise OutsideError(f"{what} {text!r} is not a plain name (no '/', '.', '..' or absolute paths): "
                        "give a name such as lobby or cam-1")  # fmt: skip
    return text


def is_inside(root: Path, path: Path) -> bool:
    """True when ``path``, with every symlink resolved, lies strictly inside ``root`` (also resolved)."""
    base, full = Path(os.path.realpath(root)), Path(os.path.realpath(path))
    return full != base and base in full.parents


def safe_child(root: Path, name: str, what: str = "name") -> Path:
    """``root / name``, refused (UserError naming ``what``) unless it stays inside ``root``.

    ``name`` may have several parts (``clips/x``) but none may be ``..`` or absolute, and the path, symlinks
    resolved, must lie strictly inside ``root``: a symlink planted in a shared run folder cannot lead a write
    (or a delete) out of it."""
    text = str(name)
    pure = PurePath(text)
    if not text or pure.is_absolute() or text.startswith(("/", "\\")) or "\0" in text \
            or any(p in ("..", ".") for p in text.replace("\\", "/").split("/")):  # fmt: skip
        raise OutsideError(f"{what} {text!r} would leave {root}: give a plain name inside it")
    path = Path(root) / text
    if not is_inside(root, path):
        raise OutsideError(f"{what} {text!r} leads out of {root} (a symlink?): remove it or use another folder")
    return path


def check_inside(root: Path, path: Path, what: str) -> Path:
    """``path`` itself if it lies inside ``root`` (symlinks resolved); else UserError naming ``what``."""
    if not is_inside(root, path):
        raise OutsideError(f"{what} {str(path)!r} is outside {root} (a symlink?): refusing to write there")
    return path
