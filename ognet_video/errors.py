"""One exception type for mistakes a user can fix; the CLI prints it as a single line."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, missing files, wrong layout: reported as one line, exit code 2, no traceback."""
