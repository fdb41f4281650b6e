"""ognet-video: OGNet ("Old is Gold", CVPR 2020) anomaly detection for fixed-camera video.

``from ognet_video import load``: a trained model with ``.stream(source)`` and ``.score(frames)``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# OpenMP threads that wait by spinning take the cores other processes need: on a shared 2-core machine a
# training step ran 2.6x slower with the spinning default than with passive waits (docs/benchmarks.md). Set
# before torch loads; an explicit OMP_WAIT_POLICY wins, and a torch imported before this package keeps its own.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["Model", "load"]

if TYPE_CHECKING:
    from ognet_video.api import Model, load


def __getattr__(name: str) -> Any:  # torch loads on first use, not when the command line starts
    if name in __all__:
        from ognet_video import api

        return getattr(api, name)
    raise AttributeError(name)
