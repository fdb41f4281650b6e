"""One exception type for mistakes a user can fix (the CLI prints it as a single line), and the helpers that
word the common ones."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, missing files, wrong layout: reported as one line, exit code 2, no traceback."""


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
