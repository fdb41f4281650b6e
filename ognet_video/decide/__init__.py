"""The decision, in one place: raw frame scores + a stored calibration -> calibrated, smoothed, flags, events.

``decide`` on a whole clip, ``Decider`` on a stream fed chunk by chunk, with the same numbers. It takes arrays
and a ``Calibration``, never a detector, and imports neither torch nor the model (``tests/test_decide.py``).
"""

from ognet_video.decide.decision import (
    Box,
    Decider,
    Decision,
    calibrated,
    crowd_corrected,
    decide,
    decision_score,
    moving_cells,
    object_cue,
    object_units,
)
from ognet_video.decide.events import ASSUMED_FPS, Event, EventMessage, EventTracker, clip_events
from ognet_video.decide.smooth import CausalSmoother, causal_smooth, offline_smooth

__all__ = [
    "ASSUMED_FPS",
    "Box",
    "CausalSmoother",
    "Decider",
    "Decision",
    "Event",
    "EventMessage",
    "EventTracker",
    "calibrated",
    "causal_smooth",
    "clip_events",
    "crowd_corrected",
    "decide",
    "decision_score",
    "moving_cells",
    "object_cue",
    "object_units",
    "offline_smooth",
]
