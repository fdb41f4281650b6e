"""``ognet-video demo``: synthetic clips, a tiny model, its report, the next command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ognet_video.cli import common
from ognet_video.cli.common import examples, flag, model_opt, runtime_overrides, split_args  # noqa: F401
from ognet_video.errors import UserError  # noqa: F401


@common.app.command(epilog=examples("ognet-video demo", "ognet-video demo --seed 1"))
def demo(
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic clips and the training.", metavar="N"),
    project: Path = typer.Option(Path("runs"), "--project", help="Where the clips and the run go.", metavar="DIR"),
) -> None:
    """Offline demo: synthetic walkway clips, a small model trained in a few minutes, its AUC, what to try next."""
    from ognet_video.demo import run_demo

    res = run_demo(project=project, seed=seed, console=common.console)
    common.console.print(
        f"\nnext, watch a clip with this model:\n  [bold]{escape(res.next_command)}[/]", highlight=False
    )
