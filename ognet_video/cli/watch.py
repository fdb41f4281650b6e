"""``ognet-video watch SOURCE``: a recorded or live camera as it plays."""

from __future__ import annotations

from pathlib import Path

import typer

from ognet_video.cli import common
from ognet_video.cli.common import examples, flag, model_opt, runtime_overrides, split_args  # noqa: F401
from ognet_video.errors import UserError  # noqa: F401


@common.app.command("watch", epilog=examples("ognet-video watch camera.mp4 --save-video",
                                       "ognet-video watch rtsp://user:pass@camera/stream --model runs/train/lobby-1",
                                       "ognet-video watch 0 --show", "ognet-video watch 'frames/*.jpg' --fps 25"))  # fmt: skip
def watch_cmd(
    source: list[str] = typer.Argument(
        ...,
        help="Video file, webcam index (0), rtsp:// or http:// URL, folder of "
        "frames, or a quoted glob; and score.event_frames=N / score.batch_frames=N.",
        metavar="SOURCE",
    ),  # fmt: skip
    model: Path = model_opt(),
    save_video: bool = flag(False, "--save-video", "Also write annotated.mp4 (heat map, score strip)."),
    show: bool = flag(False, "--show", "Show the annotated frames in a window (needs a display)."),
    stride: int = typer.Option(
        1, "--stride", help="Score every Nth frame; motion is measured between scored frames.", metavar="N"
    ),  # fmt: skip
    max_frames: int = typer.Option(None, "--max-frames", help="Stop after this many scored frames.", metavar="N"),
    fps: float = typer.Option(
        10.0, "--fps", help="Frame rate of a frame folder or glob (timestamps, video).", metavar="FPS"
    ),  # fmt: skip
    connect_timeout: float = typer.Option(
        15.0, "--connect-timeout", help="Seconds to wait for a camera or stream.", metavar="S"
    ),  # fmt: skip
    project: Path = typer.Option(
        Path("runs/watch"), "--project", help="Parent folder of numbered runs.", metavar="DIR"
    ),
    name: str = typer.Option(None, "--name", help="Run name (default: the source's name).", metavar="NAME"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N].", metavar="DEVICE"),
) -> None:
    """Score a recorded or live camera as it plays: scores.jsonl, events.jsonl, live panel, speed line.

    Ctrl-C or SIGTERM stops cleanly (exit code 130 / 143); a live source that is lost and does not come back
    exits with 1.
    """
    from ognet_video.runs import load_model
    from ognet_video.watch import WatchOptions
    from ognet_video.watch import watch as run_watch

    sources, overrides = split_args(source)
    if len(sources) != 1:
        raise UserError(f"watch takes one SOURCE, got {len(sources)}: {' '.join(map(repr, sources)) or 'none'}")
    det, label = load_model(model, device)
    runtime_overrides(det, overrides)
    opts = WatchOptions(save_video=save_video, show=show, stride=stride, max_frames=max_frames, fps=fps,
                        connect_timeout=connect_timeout)  # fmt: skip
    res = run_watch(sources[0], det, opts, project=project, name=name, label=label, console=common.console)
    if res.exit_code:
        raise typer.Exit(res.exit_code)
