"""What every ``ognet-video`` command shares: the app, the console, option helpers, ``main``.

``ognet-video``: a thin layer that parses arguments and wires the stages together.

One convention for every command, as Ultralytics has it: the model is ``--model/-m`` (a run folder or a
checkpoint; default: the newest finished run in runs/train), outputs go to numbered folders
``--project/NAME-N`` (``--name``), ``--resume`` continues the newest one, and ``section.key=value``
arguments override settings.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from ognet_video.errors import UserError

DIAGNOSTIC = ("[yellow]", "[red]", "error:", "warning:")
NOT_DIAGNOSTIC = ("[red]event",)  # watch's event lines are its output, not a complaint


class CliConsole(Console):
    """stdout for what a command produces (tables, paths, and data when ``--sink stdout`` asks for it); stderr for
    diagnostics: every ``error:``, warning, failure and stop line, so they never land in a data stream. A line is
    a diagnostic when it starts with one of ``DIAGNOSTIC``: one rule, so a new warning cannot forget it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._diag = threading.local()  # per thread: a warning from a sender thread moves no other line
        super().__init__(*args, **kwargs)

    def _get_file(self) -> IO[str]:
        if getattr(self._diag, "on", False) and self._file is None:  # a console given its own file keeps it
            return sys.stderr
        return Console.file.fget(self)  # type: ignore[attr-defined]

    file = property(_get_file, Console.file.fset)  # type: ignore[assignment]

    def print(self, *objects: object, **kwargs: object) -> None:  # type: ignore[override]
        first = objects[0] if objects else ""
        diag = isinstance(first, str) and first.startswith(DIAGNOSTIC) and not first.startswith(NOT_DIAGNOSTIC)
        self._diag.on = diag
        try:
            super().print(*objects, **kwargs)  # type: ignore[arg-type]
        finally:
            self._diag.on = False


class Stopped(Exception):  # noqa: N818 - a stop, not an error
    """Ctrl-C (130) or SIGTERM (143) inside a command. The CLI framework would turn the KeyboardInterrupt into a
    bare exit 130 (SIGTERM included) before ``main`` sees it; this carries the signal past it."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Group(TyperGroup):
    def invoke(self, ctx: click.Context) -> Any:
        from ognet_video.stream.engine import Terminated

        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Stopped(143 if isinstance(exc, Terminated) else 130) from None


STOP_HINT: list[Callable[[], str]] = []  # what to do after a stop, asked at the stop (a command sets it)


def set_stop_hint(hint: Callable[[], str]) -> None:
    STOP_HINT[:] = [hint]


def resume_command(extra: str = "--resume") -> str:
    """This command line again with ``extra`` (once), as a user would type it; under torchrun, the torchrun
    command (its rendezvous options cannot be known from here: on one machine ``--standalone`` serves)."""
    args = [a for a in sys.argv[1:] if a != extra]
    world, local = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    if world <= 1:
        return shlex.join(["ognet-video", *args, extra])
    local = local or world
    nodes = "--standalone" if local == world else f"--nnodes {world // local} <this run's --rdzv options>"
    return f"torchrun {nodes} --nproc-per-node {local} " + shlex.join(["-m", "ognet_video", *args, extra])


console: Console = CliConsole()
app = typer.Typer(
    cls=_Group,
    name="ognet-video",
    help="OGNet anomaly detection for fixed-camera video.\n\n"
    "Examples:\n\n"
    "  ognet-video demo\n\n"
    "  ognet-video data download ped2 --root data\n\n"
    "  ognet-video train ped2 --data data/UCSDped2 train.epochs=4\n\n"
    "  ognet-video eval --data data/UCSDped2\n\n"
    "  ognet-video watch rtsp://camera/stream --save-video\n\n"
    "  ognet-video score recordings/ --recursive",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Get and check datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

OVERRIDE = re.compile(r"^[a-z_]+\.[a-z_0-9]+=")


def flag(default: bool, decl: str, help: str) -> bool:  # noqa: A002 - typer's word
    return typer.Option(default, decl, help=help, metavar="")


def model_opt() -> Path | None:
    return typer.Option(None, "--model", "-m", help="Run folder or checkpoint (default: the newest finished run).",
                        metavar="RUN")  # fmt: skip


def threshold_opt() -> float | None:
    return typer.Option(None, "--threshold", help="Decision threshold on the smoothed score (default: the model's "
                        "calibrated one).", metavar="X")  # fmt: skip


def examples(*lines: str) -> str:
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


def split_args(args: list[str] | None) -> tuple[list[str], list[str]]:
    """Positional arguments -> (inputs, ``section.key=value`` overrides)."""
    args = args or []
    return [a for a in args if not OVERRIDE.match(a)], [a for a in args if OVERRIDE.match(a)]


def runtime_overrides(det, overrides: list[str]) -> None:
    from ognet_video.config import apply_runtime_overrides

    apply_runtime_overrides(det.cfg, overrides)


def main() -> None:
    """Entry point: user mistakes become one red line and exit code 2, never a traceback; SIGTERM is Ctrl-C."""
    from ognet_video.stream.engine import install_signal_handlers

    install_signal_handlers()
    STOP_HINT.clear()
    try:
        import ognet_video.cli  # noqa: F401 - registers the commands

        app()  # standalone: typer/click print usage errors themselves (exit 2)
    except UserError as exc:  # a WriteError (a full disk) is one too, with exit code 1
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a read-only or full disk, a path under a file: the environment, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        what = exc.strerror or str(exc) or type(exc).__name__
        console.print(f"[red]error:[/] {escape(where)}{escape(what)}; check the path, its permissions and free space",
                      highlight=False, soft_wrap=True)  # fmt: skip
        sys.exit(1)
    except (KeyboardInterrupt, Stopped) as exc:  # outside a run loop (e.g. while a model loads or training)
        from ognet_video.stream.engine import Terminated

        code = exc.code if isinstance(exc, Stopped) else 143 if isinstance(exc, Terminated) else 130
        how = "SIGTERM" if code == 143 else "Ctrl-C"
        hint = f"; {STOP_HINT[0]()}" if STOP_HINT else ""
        console.print(f"[yellow]stopped ({how})[/]{escape(hint)}", highlight=False, soft_wrap=True)
        sys.exit(code)
