"""``ognet-video export``: a trained model as an ONNX file that ``watch``, ``score`` and the API take."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ognet_video.cli import common
from ognet_video.cli.common import examples, model_opt
from ognet_video.errors import UserError


@common.app.command("export", epilog=examples("ognet-video export runs/train/lobby-1 --format onnx",
                                        "ognet-video export --model runs/train/lobby-1 --out lobby-1.onnx",
                                        "ognet-video watch camera.mp4 --model lobby-1.onnx"))  # fmt: skip
def export_cmd(
    run: Path = typer.Argument(None, help="Run folder or checkpoint (or use --model).", metavar="RUN"),
    model: Path = model_opt(),
    fmt: str = typer.Option(
        "onnx", "--format", "-f", help="Only 'onnx' (scored with OpenVINO or onnxruntime).", metavar="FORMAT"
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="File or folder to write (default: RUN/RUN-NAME.onnx).", metavar="PATH"
    ),  # fmt: skip
) -> None:
    """Export the patch scorer (every member's D(G(x))) to ONNX, with config and calibration inside it.

    It scores like its checkpoint (checked before it is kept): pass it as --model to watch, score or eval.
    """
    from ognet_video.models.export import export

    if run is not None and model is not None and run != model:
        raise UserError(f"two models given: {run} and --model {model}; give one")
    res = export(run if run is not None else model, fmt, out)
    common.console.print(
        f"[green]exported[/] {escape(str(res.path))} ({res.members} member{'s' * (res.members > 1)}, "
        f"{res.bytes / 1e6:.1f} MB); {' and '.join(res.runtimes)} match{'es' * (len(res.runtimes) == 1)} torch to "
        f"{res.max_abs_diff:.1g} on random patches\n"
        f"use it with: ognet-video watch SOURCE --model {escape(str(res.path))}",
        highlight=False,
    )
