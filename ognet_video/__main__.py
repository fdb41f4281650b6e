"""``python -m ognet_video``: the ``ognet-video`` command, e.g. under ``torchrun -m ognet_video train ...``."""

from ognet_video.cli import main

main()
