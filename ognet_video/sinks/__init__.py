"""Outputs of a stream, one class each, all behind ``engine.Sink`` (open, write, close, abort).

Files: ``ScoresJsonl``, ``ScoresCsv``, ``EventsJsonl``, ``SummaryJson``, ``Timeline``; pictures:
``AnnotatedVideo``, ``Window``; the terminal: ``LivePanel``, ``EventLog``. A command picks its sinks.
"""

from ognet_video.sinks.console import DropWarning, EventLog, LivePanel
from ognet_video.sinks.files import EventsJsonl, Folder, ScoresCsv, ScoresJsonl, SummaryJson, Timeline
from ognet_video.sinks.video import AnnotatedVideo, Window, display_unavailable

__all__ = [
    "AnnotatedVideo", "DropWarning", "EventLog", "EventsJsonl", "Folder", "LivePanel", "ScoresCsv", "ScoresJsonl", "SummaryJson",
    "Timeline", "Window", "display_unavailable",
]  # fmt: skip
