"""One exception type for mistakes a user can fix (the CLI prints it as a single line), and the helpers that
word the common ones."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path


class UserError(Exception):
    """Bad input, missing files, wrong layout: reported as one line, exit code 2, no traceback."""

    exit_code = 2


class WriteError(UserError, OSError):
    """A file the program writes could not be written (a full disk, no permission), named with what to do.
    A write or fsync raises its OSError without the file's name ("No space left on device"); this says it.
    Still an OSError, so code that handles those goes on doing so; exit code 1: the environment, not the input."""

    exit_code = 1


FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def write_error(exc: OSError, path: str | Path) -> WriteError:
    """``exc``, raised while writing ``path``, as one line naming it and what to do."""
    if exc.errno in FULL:
        return WriteError(f"cannot write {path}: the disk is full (or over quota); free space on it or choose "
                          "another --project")  # fmt: skip
    why = exc.strerror or str(exc) or type(exc).__name__
    return WriteError(f"cannot write {path}: {why}; check the folder's permissions and free space, or choose "
                      "another --project")  # fmt: skip


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Around a write of ``path``: an OSError becomes a ``WriteError`` naming it (one already named passes)."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise write_error(exc, path) from exc


def newer_format(got: object, want: str) -> bool:
    """True when ``got`` is ``want``'s family at a higher version (``ognet-video/2`` against ``ognet-video/1``):
    a file from a newer release, to be named as such rather than as a foreign file."""
    if not isinstance(got, str) or "/" not in got:
        return False
    family, _, version = got.rpartition("/")
    want_family, _, want_version = want.rpartition("/")
    return family == want_family and version.isdigit() and want_version.isdigit() and int(version) > int(want_version)


def yaml_problem(exc: Exception) -> str:
    """A YAML error as one line with its place: ``line 3, column 7: mapping values are not allowed here``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem
