"""Camera health: whether a camera still sees the scene its model was trained on.

``reference``: the normal picture, measured on training footage and stored in the checkpoint; ``measure``:
the per-frame measures; ``checks``: the per-stream monitor that raises ``camera`` events (covered, moved,
blurred, dark, bright, frozen, silent) and suspends anomaly decisions while one is open.
"""

from ognet_video.health.checks import REASONS, CameraEvent, CameraHealth, CameraMessage, Thresholds
from ognet_video.health.reference import HealthReference, fit_reference

__all__ = ["REASONS", "CameraEvent", "CameraHealth", "CameraMessage", "HealthReference", "Thresholds", "fit_reference"]
