"""``ognet-video``: one module per command; ``common`` holds the app, the console and ``main``."""
# ruff: noqa: I001 - the import order is the order ``--help`` lists the commands in

from ognet_video.cli.common import app, main
from ognet_video.cli import data, train, evaluate, demo, score, watch  # noqa: F401 - registers the commands
from ognet_video.cli import calibrate  # noqa: F401 - registers the command
from ognet_video.cli import export  # noqa: F401 - registers the command
from ognet_video.cli import review  # noqa: F401 - registers the command

__all__ = ["app", "main"]
