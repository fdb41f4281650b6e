"""``ognet-video review [RUN...]``: a local web page to look through the events of watch and score runs and
label them (false alarm or real) for ``calibrate --feedback``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ognet_video.cli import common
from ognet_video.cli.common import examples
from ognet_video.errors import UserError

DEFAULT_RUNS = (Path("runs/watch"), Path("runs/score"))


@common.app.command("review", epilog=examples("ognet-video review", "ognet-video review runs/watch/lobby-1 runs/score/night-3",
                                        "ognet-video review --host 0.0.0.0 --port 8080"))  # fmt: skip
def review_cmd(
    runs: list[Path] = typer.Argument(
        None,
        help="Run folders, folders of runs or camera folders (default: runs/watch and runs/score).",
        metavar="RUN",
        show_default=False,
    ),  # fmt: skip
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        metavar="ADDR",
        help="Address to listen on: 127.0.0.1 (this machine only) or 0.0.0.0 / an interface's address (then "
        "labelling needs the token printed with the URL).",
    ),  # fmt: skip
    port: int = typer.Option(8765, "--port", help="Port to listen on (0: any free port).", metavar="PORT"),
) -> None:
    """Serve a page listing the events of runs, newest first: snapshot, clip, score timeline, and buttons to
    label each one a false alarm (normal) or real, written to feedback.jsonl next to its events.

    The page re-reads the runs as it refreshes, so it follows a watch that is still running. Ctrl-C stops it.
    """
    from ognet_video.review.app import start_server

    if runs:
        missing = [r for r in runs if not r.is_dir()]
        if missing:
            raise UserError(f"{missing[0]} is not a folder: give watch or score run folders (or runs/watch)")
    else:
        runs = [r for r in DEFAULT_RUNS if r.is_dir()]
        if not runs:
            raise UserError("review needs a RUN: there is no runs/watch or runs/score here; give the run folders")
    if not any(any(r.rglob("events.jsonl")) for r in runs):
        common.console.print(f"[yellow]warning:[/] no events.jsonl under {escape(', '.join(map(str, runs)))} yet; "
                             "the page lists events as they are written", highlight=False)  # fmt: skip
    server = start_server(list(runs), host, port)
    try:
        common.console.print(f"review page: {escape(server.url)}  (Ctrl-C stops)", highlight=False, soft_wrap=True)
        while server.running:
            server.wait(0.5)
    finally:
        server.stop()
