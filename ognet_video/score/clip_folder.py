"""``ClipFolder``: the sink that makes a scored clip durable.

A clip's files are written into ``clips/.tmp-*`` and, once every other sink has closed them, fsynced and
renamed into place as one folder; only then is its manifest line appended. So a kill at any moment leaves
either a complete clip folder or none (a folder without a manifest line is scored again).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from ognet_video.errors import UserError
from ognet_video.paths import safe_child
from ognet_video.score.manifest import ClipRecord, Manifest, fsync_dir
from ognet_video.sinks import Folder
from ognet_video.sources.discover import ClipInput
from ognet_video.stream.engine import Batch, Sink, Stream


def _short(source_frames: int, expected: int | None) -> bool:
    """A video that ended well before the length its container states was cut off or is damaged."""
    return expected is not None and source_frames < 0.98 * expected - 1


def publish(tmp: Path, final: Path) -> None:
    """Rename the finished temp folder ``tmp`` (a sibling of ``final``) into place, durably.

    ``final`` must be a plain child of ``tmp``'s folder (checked again here, whoever named it); what stood there
    (a clip folder a killed run published without its manifest line) is moved aside and, if it is a real
    folder, deleted; a symlink is only unlinked, never followed."""
    if final.parent != tmp.parent:
        raise UserError(f"clip folder {str(final)!r} is not inside {tmp.parent}: refusing to publish there")
    final = safe_child(tmp.parent, final.name, "clip folder")
    for p in tmp.iterdir():
        if not p.is_symlink():
            os.chmod(p, 0o644)
    fsync_dir(tmp)
    old = None
    if os.path.lexists(final):  # left by a run killed after publishing but before its manifest line
        old = final.parent / f".old-{uuid.uuid4().hex[:12]}"
        os.replace(final, old)
    os.replace(tmp, final)
    os.chmod(final, 0o755)
    fsync_dir(final.parent)
    if old is not None:
        if old.is_symlink() or not old.is_dir():
            old.unlink(missing_ok=True)
        else:
            shutil.rmtree(old, ignore_errors=True)


class ClipFolder(Sink):
    def __init__(self, clips_dir: Path, clip: ClipInput, name: str, fp: tuple[int, int, int], mid: str,
                 manifest: Manifest, extras: list[str]) -> None:  # fmt: skip
        self.clips_dir, self.clip, self.name, self.fp, self.mid = clips_dir, clip, name, fp, mid
        self.manifest, self.extras = manifest, extras
        self.folder = Folder(make=self._make_tmp)
        self.frames = self.flags = 0
        self.max_score: float | None = None
        self.first: tuple[int, float | None] | None = None
        self.t0 = time.perf_counter()

    def _make_tmp(self) -> Path:
        return self.clips_dir / f".tmp-{uuid.uuid4().hex[:12]}"  # not the clip's name: that may be long

    def write(self, batch: Batch) -> None:
        for r in batch.results:
            self.frames += 1
            self.flags += bool(r.anomalous)
            self.max_score = r.smoothed if self.max_score is None else max(self.max_score, r.smoothed)
        if batch.events and self.first is None:
            self.first = (batch.events[0].start, batch.events[0].start_time)

    def close(self, stream: Stream) -> None:
        publish(self.folder.path, self.clips_dir / self.name)
        st, info = stream.stats, stream.opened
        assert info is not None  # closed only after it opened
        status, reason = "done", ""
        if info.kind == "video" and _short(st.decoded, info.length):
            status, reason = (
                "short",
                f"ended after {st.decoded} of {info.length} frames: the file is cut off or damaged",
            )
        if st.skipped:  # scored without them: the frames after each gap kept their scores
            names = ", ".join(st.skipped_frames) + (", ..." if st.skipped > len(st.skipped_frames) else "")
            skipped = f"{st.skipped} unreadable frame{'s' * (st.skipped > 1)} skipped: {names}"
            reason = f"{reason}; {skipped}" if reason else skipped
        n = self.frames
        self._record(status, reason, skipped=st.skipped, frames=n, max_score=self.max_score, anomalous_share=self.flags / n if n else None,
                     events=stream.stats.events, first_event_frame=None if self.first is None else self.first[0],
                     first_event_time=None if self.first is None else self.first[1], extras=list(self.extras))  # fmt: skip

    def abort(self, stream: Stream) -> None:
        if self.folder.made:
            shutil.rmtree(self.folder.path, ignore_errors=True)
        if stream.stats.stopped == "failed":  # an interrupted clip is simply scored again next time
            self._record("failed", stream.stats.message or "failed")

    def _record(self, status: str, reason: str = "", **stats: object) -> None:
        rec = ClipRecord(str(self.clip.path), self.clip.kind, self.name, *self.fp, self.mid, status, reason,
                         seconds=round(time.perf_counter() - self.t0, 3), **stats)  # type: ignore[arg-type]  # fmt: skip
        self.manifest.append(rec)
