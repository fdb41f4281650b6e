"""A channel: where one sink's messages go (stdout, a file, a webhook, a broker, Frigate), delivered from its own
thread through a bounded queue so that scoring never waits for a receiver."""

from __future__ import annotations

import collections
import threading
import time
import urllib.error
from collections.abc import Callable
from typing import Any

Log = Callable[[str], None]


class Channel:
    """Delivers messages in its own thread; ``deliver`` raises on failure. Subclasses name themselves."""

    retries = 0  # extra attempts per message, with backoff
    backoff = (0.5, 4.0)

    def __init__(self, name: str, log: Log | None = None, queue_size: int = 256) -> None:
        self.name, self.log = name, log or (lambda msg: None)
        self.queue: collections.deque[dict[str, Any]] = collections.deque(maxlen=queue_size)
        self.sent = self.failed = self.dropped = 0
        self._burst = 0  # failures since the last success
        self._cv = threading.Condition()
        self._closing: float | None = None  # the deadline to give up by, once closing
        self._inflight = False  # a message is being delivered (and not yet counted)
        self._thread = threading.Thread(target=self._run, name=f"sink:{name}", daemon=True)

    def start(self) -> Channel:
        self._thread.start()
        return self

    def put(self, msg: dict[str, Any]) -> None:
        """Queue a message (never blocks): when the queue is full its oldest message is dropped."""
        with self._cv:
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1
            self.queue.append(msg)
            self._cv.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued within ``timeout`` seconds; what is left then is counted as failed."""
        with self._cv:
            self._closing = time.monotonic() + timeout
            self._cv.notify()
        self._thread.join(timeout + 1.0)
        with self._cv:
            self.failed += len(self.queue)
            self.queue.clear()
            if self._inflight and self._thread.is_alive():  # a delivery still under way: failed, counted once
                self.failed, self._inflight = self.failed + 1, False
        self.shutdown()

    @property
    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "dropped": self.dropped}

    def deliver(self, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def announce(self, camera: str) -> None:
        """A camera's stream starts: channels that tell a home-automation hub about cameras do it here."""

    def shutdown(self) -> None:
        """Release the connection (after the last delivery)."""

    def _late(self) -> bool:
        return self._closing is not None and time.monotonic() > self._closing

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self.queue and self._closing is None:
                    self._cv.wait()
                if not self.queue or self._late():
                    return
                msg = self.queue.popleft()
                self._inflight = True
            self._attempt(msg)
            with self._cv:
                self._inflight = False

    def _count(self, sent: bool) -> None:
        with self._cv:
            if self._inflight:  # else: counted as failed by ``close`` already
                self.sent, self.failed = self.sent + sent, self.failed + (not sent)

    def _attempt(self, msg: dict[str, Any]) -> None:
        delay = self.backoff[0]
        for attempt in range(self.retries + 1):
            try:
                self.deliver(msg)
            except Exception as exc:  # any failure of the receiver is counted, never raised into scoring
                if attempt < self.retries and not self._late():
                    time.sleep(delay)
                    delay = min(2 * delay, self.backoff[1])
                    continue
                self._count(False)
                self._burst += 1
                if self._burst == 1:
                    self.log(f"sink {self.name}: cannot deliver ({why(exc)}); counting failures until it works again")
                return
            self._count(True)
            if self._burst:
                self.log(f"sink {self.name}: delivering again after {self._burst} failed message(s)")
                self._burst = 0
            return


def why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
