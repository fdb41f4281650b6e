"""What operators said about events, gathered for ``calibrate --feedback``.

The review page stores labels in each camera folder's ``feedback.jsonl`` (``review.feedback``); an event's
``events.jsonl`` line names its source clip (the gray frames the model saw, ``clips.sink``). This
module pairs the two: every labelled anomaly event under the given runs, with the clip to score again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ognet_video.errors import UserError
from ognet_video.review.feedback import read_labels
from ognet_video.review.index import EVENTS, camera_folders, read_events


@dataclass(frozen=True)
class LabelledEvent:
    folder: Path  # the camera folder (events.jsonl, feedback.jsonl)
    id: str  # CAMERA-N
    label: str  # "normal" (a false alarm) or "real"
    source_clip: Path

    @property
    def name(self) -> str:
        return f"{self.folder.name}/{self.id}"


def labelled_events(runs: list[Path]) -> list[LabelledEvent]:
    """The labelled anomaly events under ``runs`` (watch or score run folders), in a stable order, found by the
    review page's own rules (its camera folders, event ids and file lookup), so every event labelled there is
    found here. A labelled event whose source clip is gone (deleted by retention, or written with --no-clips) is
    a UserError naming it: a refit without it would not do what the label asked."""
    out: list[LabelledEvent] = []
    for run in runs:
        if not run.is_dir():
            raise UserError(f"--feedback {run}: not a folder; give a run folder of watch or score")
        for folder in camera_folders(run):
            labels = read_labels(folder)
            if not labels:
                continue
            mtime = (folder / EVENTS).stat().st_mtime
            events = {e.id: e for e in read_events(run, folder, mtime) if e.kind == "anomaly"}
            for eid, lab in sorted(labels.items()):
                e = events.get(eid)
                if e is None:
                    raise UserError(f"{folder / 'feedback.jsonl'}: event {eid} is not in its events.jsonl")
                clip = e.file("source")
                if clip is None:
                    why = ("is missing (deleted by retention?) or lies outside its folder" if e.data.get("source_clip")
                           else "was not kept (--no-clips)")  # fmt: skip
                    raise UserError(f"event {eid} in {folder} is labelled {lab.label} but its source clip {why}; "
                                    "remove its label or leave out that run (the model was not changed)")  # fmt: skip
                out.append(LabelledEvent(folder, eid, lab.label, clip))
    return out
