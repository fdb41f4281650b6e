"""``CameraHealth``: is a camera still seeing its scene? One monitor per stream, fed one frame at a time.

Reasons, in the order they are reported when several hold at once (the first is the likeliest cause):

* ``frozen``: the picture has not changed for ``health.frozen_seconds`` (or twice the longest the training
  footage ever stayed still);
* ``bright``: mean brightness above the footage's range by ``health.brightness_margin`` (glare, a light in the
  lens: reported before ``covered``, as a saturated picture has no texture either);
* ``covered``: most of the normally textured picture has lost its texture (a hand, tape, paint, fog);
* ``dark``: mean brightness below the footage's range (lights off), its texture kept in proportion;
* ``blurred``: fine detail (relative to contrast) below ``health.blur_ratio`` of the footage's least;
* ``moved``: the static background is offset from the reference by more than ``health.moved_shift`` of the
  width, or its edges no longer match (``health.match_ratio`` of the footage's least correlation);
* ``silent``: a live source has delivered nothing for ``health.silent_seconds`` (``silence``, from the run
  loop's clock: no frame carries it).

A reason must hold for ``health.persist_seconds`` of source time before its event starts, and be gone as
long before it ends, so one odd frame neither raises nor ends an alert (frozen and silent are durations of
their own). While an event is open the stream's anomaly decisions are suspended: the camera does not show
the scene the model knows. Events leave ``start`` / ``update`` / ``end`` messages in ``outbox``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ognet_video.config import HealthConfig
from ognet_video.health.measure import Measurement, Meter
from ognet_video.health.reference import HealthReference

REASONS = ("frozen", "bright", "covered", "dark", "blurred", "moved", "silent")
DESCRIBE = {
    "frozen": "the picture is frozen", "covered": "the camera is covered or blinded",
    "dark": "the picture is too dark", "bright": "the picture is too bright", "blurred": "the picture is out of focus",
    "moved": "the camera has moved (its view no longer lines up)", "silent": "the camera delivers no frames",
}  # fmt: skip
ASSUMED_FPS = 10.0


@dataclass
class Thresholds:
    """The limits of one camera: its reference's ranges with the settings' margins (see the module doc)."""

    dark: float
    bright: float
    blurred: float
    covered: float
    moved: float
    match: float
    still: float
    frozen_seconds: float

    @classmethod
    def of(cls, ref: HealthReference, cfg: HealthConfig) -> Thresholds:
        lo, hi = ref.brightness
        return cls(
            dark=lo * (1.0 - cfg.brightness_margin), bright=hi + cfg.brightness_margin * (255.0 - hi),
            blurred=ref.sharpness[0] * cfg.blur_ratio, covered=max(cfg.covered_share, min(0.95, ref.lost + 0.1)),
            moved=max(cfg.moved_shift, 2.0 * ref.shift), match=ref.match * cfg.match_ratio if ref.match > 0 else -1.0,
            still=ref.still_level, frozen_seconds=max(cfg.frozen_seconds, 2.0 * ref.still_seconds),
        )  # fmt: skip


@dataclass
class CameraEvent:
    reason: str
    start: int  # the first frame the reason held on (silent: the last frame before the silence)
    start_time: float | None
    end: int | None = None  # the last frame it held on (silent: the first frame after)
    end_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "camera", **dataclasses.asdict(self)}


@dataclass
class CameraMessage:
    """``start``, ``update`` or ``end`` of the ``number``-th camera event of a stream (like ``EventMessage``)."""

    type: str
    number: int
    event: CameraEvent  # a copy, as of the message
    frame: int
    time: float | None
    image: Any = None  # the frame it started on (a snapshot of what the camera showed), when there was one
    kind: str = "camera"


class CameraHealth:
    """The checks of one stream; see the module doc. ``measure`` may run in another thread than ``update``
    (the prefetcher measures, the run loop decides): it only touches the meter."""

    def __init__(self, ref: HealthReference, cfg: HealthConfig, live: bool = False, update_every: float = 5.0) -> None:
        self.cfg, self.live, self.update_every = cfg, live, update_every
        self.limits = Thresholds.of(ref, cfg)
        self.meter = Meter(ref.background, ref.cells, ref.level)
        self.active: CameraEvent | None = None
        self.closed: list[CameraEvent] = []
        self.outbox: list[CameraMessage] = []
        self.number = 0
        self.suspended = 0  # frames whose decision was suspended
        self._since: dict[str, tuple[int, float]] = {}  # reason -> (frame, time) it has held since
        self._clear_since: float | None = None  # the active reason has been gone since (source time)
        self._still_since: tuple[int, float] | None = None
        self._last: tuple[int, float | None, float] = (-1, None, 0.0)  # the last frame: index, time, seconds
        self._sent_at = 0.0

    def measure(self, image: np.ndarray) -> Measurement:
        return self.meter.measure(image)

    def failing(self, m: Measurement, index: int, t: float) -> list[str]:
        """The reasons this frame shows, in report order (frozen from its own run of still frames)."""
        c, lim, out = self.cfg, self.limits, []
        if m.still > lim.still:
            self._still_since = None
        elif self._still_since is None:  # the run of repeats began with the frame before
            prev, _, prev_t = self._last
            self._still_since = (prev, prev_t) if prev >= 0 else (index, t)
        if c.frozen and self._still_since is not None and t - self._still_since[1] >= lim.frozen_seconds:
            out.append("frozen")
        if c.brightness and m.brightness > lim.bright:
            out.append("bright")
        if c.covered and m.lost > lim.covered:
            out.append("covered")
        if c.brightness and m.brightness < lim.dark:
            out.append("dark")
        if c.blurred and m.sharpness < lim.blurred:
            out.append("blurred")
        if c.moved and (m.shift > lim.moved or m.match < lim.match):
            out.append("moved")
        return out

    def update(self, m: Measurement, index: int, time: float | None, image: Any = None) -> str | None:
        """One frame's measures; the reason the camera is not seeing its scene (decisions suspended), or None."""
        t = _seconds(index, time)
        if self.active is not None and self.active.reason == "silent":  # frames again: the silence is over
            self._close(index, time)
        failing = self.failing(m, index, t)
        self._since = {r: self._since.get(r, (index, t)) for r in failing}
        if "frozen" in failing and self._still_since is not None:
            self._since["frozen"] = self._still_since
        self._last = (index, time, t)
        persist = self.cfg.persist_seconds
        if self.active is not None:
            if self.active.reason in failing:
                self._clear_since = None
                self.active.end, self.active.end_time = index, time
                if t - self._sent_at >= self.update_every > 0:
                    self._send("update", index, time)
            else:
                self._clear_since = t if self._clear_since is None else self._clear_since
                if t - self._clear_since >= persist:
                    self._close(index, time)
        if self.active is None:
            held = [r for r in failing if r == "frozen" or t - self._since[r][1] >= persist]
            if held:
                frame, since = self._since[held[0]]
                self._open(held[0], frame, since if time is not None else None, index, time, image)
        if self.active is not None:
            self.suspended += 1
            return self.active.reason
        return None

    def silence(self, seconds: float) -> None:
        """The run loop's clock: a live source has delivered nothing for ``seconds`` (wall clock)."""
        if not (self.live and self.cfg.silent) or seconds < self.cfg.silent_seconds:
            return
        if self.active is not None and self.active.reason == "silent":
            return
        index, time, _ = self._last
        if self.active is not None:
            self._close(index, time)
        self._open("silent", index, time, index, time, None)

    def finish(self) -> CameraEvent | None:
        """End of the source: an open camera event closes at the last frame."""
        if self.active is None:
            return None
        index, time, _ = self._last
        return self._close(index, time)

    def _open(self, reason: str, start: int, start_time: float | None, index: int, time: float | None,
              image: Any) -> None:  # fmt: skip
        self.number += 1
        self.active = CameraEvent(reason, start, start_time, index, time)
        self._clear_since = None
        self._send("start", index, time, image)

    def _close(self, index: int, time: float | None) -> CameraEvent:
        ev = self.active
        assert ev is not None
        if ev.reason == "silent":
            ev.end, ev.end_time = index, time
        self._send("end", index, time)
        self.active, self._clear_since = None, None
        self.closed.append(ev)
        return ev

    def _send(self, kind: str, index: int, time: float | None, image: Any = None) -> None:
        assert self.active is not None
        self._sent_at = _seconds(index, time)
        self.outbox.append(CameraMessage(kind, self.number, dataclasses.replace(self.active), index, time, image))


def _seconds(index: int, time: float | None) -> float:
    return float(time) if time is not None else index / ASSUMED_FPS
