"""A bound on the disk that event clips take: the oldest events' files go first.

``watch`` runs for weeks; each event leaves a clip, a source clip and a snapshot. ``Retention`` walks the
``events/`` folders under the watch project (every run's, not only the current one) and deletes whole events
(their three files together), oldest first, that are older than ``days`` or beyond ``gb`` in all. It deletes
only regular files named as the clip sink names them, inside folders named ``events``, and follows no link.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ognet_video.clips.paths import EVENTS_DIR

_EVENT_FILE = re.compile(r"^(?P<id>[^.][^/]*?)(-source)?\.(mp4|jpg)$")


@dataclass
class Retention:
    root: Path  # the watch project folder (e.g. runs/watch)
    days: float | None = 14.0  # keep events at most this old (None: no age limit)
    gb: float | None = 5.0  # keep at most this much in all (None: no size limit)
    every_s: float = 60.0  # ``maybe_prune`` walks the folders at most this often
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last: float = field(default=-1e18, repr=False)

    def maybe_prune(self, _clip: Path | None = None) -> int:
        """``prune`` unless it ran in the last ``every_s`` seconds (the clip sink calls it after each clip)."""
        if time.monotonic() - self._last < self.every_s:
            return 0
        return self.prune()

    def prune(self) -> int:
        """Delete the events over the limits; returns how many events were deleted."""
        with self._lock:
            self._last = time.monotonic()
            events = _events(self.root)
            now, deleted = time.time(), 0
            total = sum(size for _, size, _ in events.values())
            for _key, (mtime, size, files) in sorted(events.items(), key=lambda kv: kv[1][0]):
                too_old = self.days is not None and now - mtime > self.days * 86400
                too_big = self.gb is not None and total > self.gb * 1e9
                if not (too_old or too_big):
                    break
                for f in files:
                    try:
                        f.unlink()
                    except FileNotFoundError:
                        pass
                total -= size
                deleted += 1
            return deleted


def _events(root: Path) -> dict[tuple[str, str], tuple[float, int, list[Path]]]:
    """Every event's files under ``root``: (folder, id) -> (newest mtime, bytes, files)."""
    out: dict[tuple[str, str], tuple[float, int, list[Path]]] = {}
    if not root.is_dir():
        return out
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        if os.path.basename(folder) != EVENTS_DIR:
            continue
        for name in files:
            m = _EVENT_FILE.match(name)
            path = Path(folder) / name
            if m is None or path.is_symlink():
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            key = (folder, m.group("id"))
            mtime, size, paths = out.get(key, (0.0, 0, []))
            out[key] = (max(mtime, st.st_mtime), size + st.st_size, [*paths, path])
    return out
