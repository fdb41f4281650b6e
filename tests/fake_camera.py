"""Fake live cameras: captures an ``opener`` can hand to a live source in place of OpenCV's."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ognet_video.errors import UserError


class FakeCapture:
    """What a live source needs of a capture besides ``read`` (the subclass's). It states no frame rate, so every
    frame it delivers is analysed."""

    def read(self) -> tuple[bool, np.ndarray | None]:
        raise NotImplementedError

    def grab(self) -> bool:
        return self.read()[0]

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


class ImageCapture(FakeCapture):
    """A camera that plays ``images[start:start+n]`` (all of them by default), a frame every ``delay`` seconds,
    and then drops the link."""

    def __init__(self, images: list[np.ndarray], start: int = 0, n: int | None = None, delay: float = 0.002) -> None:
        self.images, self.i, self.delay = images, start, delay
        self.stop = len(images) if n is None else start + n

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.i >= self.stop:
            return False, None
        time.sleep(self.delay)
        self.i += 1
        return True, self.images[self.i - 1]


def one_connection(make: Callable[[], FakeCapture]) -> Callable[[str], FakeCapture]:
    """An opener whose camera connects once (``make()``) and then refuses, so the source ends as lost."""
    calls: list[str] = []

    def opener(spec: str) -> FakeCapture:
        calls.append(spec)
        if len(calls) > 1:
            raise UserError("cannot open stream source (fake camera is gone)")
        return make()

    return opener
