"""ognet-video: OGNet ("Old is Gold", CVPR 2020) anomaly detection for fixed-camera video.

``from ognet_video import load``: a trained model with ``.stream(source)`` and ``.score(frames)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Model", "load"]

if TYPE_CHECKING:
    from ognet_video.api import Model, load


def __getattr__(name: str) -> Any:  # torch loads on first use, not when the command line starts
    if name in __all__:
        from ognet_video import api

        return getattr(api, name)
    raise AttributeError(name)
