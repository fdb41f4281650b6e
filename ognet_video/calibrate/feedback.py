"""What operators said about events, gathered for ``calibrate --feedback``.

The review page stores labels in each camera folder's ``feedback.jsonl`` (``review.feedback``); an event's
``events.jsonl`` line names its source clip (the frames as the camera delivered them, ``clips.sink``). This
module pairs the two: every labelled anomaly event under the given runs, with the clip to score again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ognet_video.errors import UserError
from ognet_video.paths import safe_child
from ognet_video.review.feedback import read_labels

MAX_DEPTH = 4  # a run folder, its camera folders, a score run's clips/NAME


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
    """The labelled anomaly events under ``runs`` (watch or score run folders), in a stable order. A labelled
    event whose source clip is gone (deleted by retention, or written with --no-clips) is a UserError naming it:
    a refit without it would not do what the label asked."""
    out: list[LabelledEvent] = []
    for run in runs:
        if not run.is_dir():
            raise UserError(f"--feedback {run}: not a folder; give a run folder of watch or score")
        for folder in _camera_folders(run):
            labels = read_labels(folder)
            if not labels:
                continue
            events = _events(folder / "events.jsonl")
            for eid, lab in sorted(labels.items()):
                e = events.get(eid)
                if e is None:
                    raise UserError(f"{folder / 'feedback.jsonl'}: event {eid} is not in its events.jsonl")
                rel = e.get("source_clip")
                clip = safe_child(folder, rel, f"source clip of {eid}") if isinstance(rel, str) and rel else None
                if clip is None or not clip.is_file():
                    raise UserError(f"event {eid} in {folder} is labelled {lab.label} but its source clip "
                                    f"{'is missing (deleted by retention?)' if clip else 'was not kept (--no-clips)'}"
                                    "; remove its label or leave out that run (the model was not changed)")  # fmt: skip
                out.append(LabelledEvent(folder, eid, lab.label, clip))
    return out


def _camera_folders(run: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(run, followlinks=False):
        depth = len(Path(folder).relative_to(run).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < MAX_DEPTH)
        if "events.jsonl" in files:
            found.append(Path(folder))
    return found


def _events(path: Path) -> dict[str, dict]:
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(d, dict) and d.get("kind", "anomaly") == "anomaly" and isinstance(d.get("id"), str):
            out[d["id"]] = d
    return out
