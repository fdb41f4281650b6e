"""SIGINT and SIGTERM during a run loop: a request to stop after the current batch, so every sink has the same
frames (``Engine`` checks ``SIGNALS``); outside a run they raise at once, as Python does by default."""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, docker stop, systemd), handled like Ctrl-C."""


class _Signals:
    """SIGINT and SIGTERM while a run loop is active ask it to stop after the current batch, so every sink has
    the same frames; outside a run (or on a second signal) they raise at once, as Python does by default."""

    def __init__(self) -> None:
        self.running = 0
        self.requested: str | None = None

    def handler(self, signum: int, frame: object) -> None:
        if self.running and self.requested is None:
            self.requested = "terminated" if signum == signal.SIGTERM else "interrupted"
            return
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def check(self) -> None:
        if self.requested is not None:
            raise Terminated() if self.requested == "terminated" else KeyboardInterrupt()


SIGNALS = _Signals()


def install_signal_handlers() -> None:
    """Route SIGINT and SIGTERM through ``SIGNALS`` (the command line does; call it from the main thread)."""
    signal.signal(signal.SIGINT, SIGNALS.handler)
    signal.signal(signal.SIGTERM, SIGNALS.handler)
