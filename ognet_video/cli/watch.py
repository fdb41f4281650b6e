"""``ognet-video watch SOURCE...``: recorded or live cameras as they play, with live alerts and metrics."""

from __future__ import annotations

from pathlib import Path

import typer

from ognet_video.cli import common
from ognet_video.cli.common import examples, flag, model_opt, runtime_overrides, split_args, threshold_opt  # noqa: F401
from ognet_video.errors import UserError  # noqa: F401


@common.app.command("watch", epilog=examples("ognet-video watch camera.mp4 --save-video",
                                       "ognet-video watch rtsp://user:pass@camera/stream --model runs/train/lobby-1",
                                       "ognet-video watch 0 --show", "ognet-video watch 'frames/*.jpg' --fps 25",
                                       "ognet-video watch rtsp://cam1/s rtsp://cam2/s cams.yaml --sink mqtt://127.0.0.1/ognet "
                                       "--sink webhook=http://127.0.0.1:8080/hook --metrics-port 9108",
                                       "ognet-video watch camera.mp4 --sink stdout > alerts.jsonl"))  # fmt: skip
def watch_cmd(
    source: list[str] = typer.Argument(
        ...,
        help="Video file, webcam index (0), rtsp:// or http:// URL, folder of frames, a quoted glob, or a "
        "cameras .yaml (name, url, stride, fps); several at once share the model; and score.event_frames=N / "
        "score.batch_frames=N.",
        metavar="SOURCE",
    ),  # fmt: skip
    model: Path = model_opt(),
    save_video: bool = flag(False, "--save-video", "Also write annotated.mp4 (heat map, score strip)."),
    show: bool = flag(False, "--show", "Show the annotated frames in a window (needs a display)."),
    stride: int = typer.Option(
        1, "--stride", help="Score every Nth frame; motion is measured between scored frames.", metavar="N"
    ),  # fmt: skip
    max_frames: int = typer.Option(None, "--max-frames", help="Stop after this many scored frames.", metavar="N"),
    threshold: float = threshold_opt(),
    fps: float = typer.Option(
        10.0, "--fps", help="Frame rate of a frame folder or glob (timestamps, video).", metavar="FPS"
    ),  # fmt: skip
    connect_timeout: float = typer.Option(
        15.0, "--connect-timeout", help="Seconds to wait for a camera or stream.", metavar="S"
    ),  # fmt: skip
    sink: list[str] = typer.Option(
        [],
        "--sink",
        help="Send event messages (start, update, end) as they happen: stdout (JSON lines; the rest "
        "goes to stderr), file=PATH, webhook=URL, frigate=URL (events in Frigate) or "
        "mqtt://HOST[:PORT]/TOPIC[?discovery=homeassistant]. Repeatable.",
        metavar="SINK",
    ),  # fmt: skip
    update_every: float = typer.Option(
        5.0, "--update-every", help="Seconds of source time between update messages of an open event.", metavar="S"
    ),  # fmt: skip
    metrics_port: int = typer.Option(
        None, "--metrics-port", help="Serve Prometheus /metrics and /healthz on this port.", metavar="PORT"
    ),  # fmt: skip
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", metavar="ADDR",
        help="Address the metrics server listens on: 127.0.0.1 (this machine only), 0.0.0.0 (every interface; "
        "no authentication) or one interface's address.",
    ),  # fmt: skip
    clips: bool = typer.Option(
        True, "--clips/--no-clips", metavar="", help="Keep an H.264 clip of each event (events/ in the run folder).",
    ),  # fmt: skip
    pre_roll: float = typer.Option(3.0, "--pre-roll", help="Seconds of each clip before its event.", metavar="S"),
    post_roll: float = typer.Option(3.0, "--post-roll", help="Seconds of each clip after its event.", metavar="S"),
    clip_days: float = typer.Option(
        14.0, "--clip-days", help="Delete event clips older than this, across the project's runs.", metavar="DAYS"
    ),  # fmt: skip
    clip_gb: float = typer.Option(
        5.0, "--clip-gb", help="Keep at most this much of event clips under the project folder (oldest go first).",
        metavar="GB",
    ),  # fmt: skip
    review_port: int = typer.Option(
        None, "--review-port", metavar="PORT",
        help="Serve the review page live on this port: each camera's latest frame, fps, drops, and events as they "
        "open, with their clips (ognet-video review serves it after the run).",
    ),  # fmt: skip
    review_host: str = typer.Option(
        "127.0.0.1", "--review-host", metavar="ADDR",
        help="Address the review page listens on; beyond 127.0.0.1 labelling needs the token printed with the URL.",
    ),  # fmt: skip
    project: Path = typer.Option(
        Path("runs/watch"), "--project", help="Parent folder of numbered runs.", metavar="DIR"
    ),
    name: str = typer.Option(None, "--name", help="Run name (default: the source's name, or cameras).", metavar="NAME"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N].", metavar="DEVICE"),
) -> None:
    """Score recorded or live cameras as they play: scores.jsonl, events.jsonl, live panel, speed line.

    Several sources (or a cameras file) run at once, each into its own subfolder. Ctrl-C or SIGTERM stops
    cleanly (exit code 130 / 143); a live source that is lost and does not come back exits with 1 (the other
    cameras go on).
    """
    from ognet_video.calibrate.calibration import with_threshold
    from ognet_video.paths import plain_name
    from ognet_video.runs import load_model
    from ognet_video.watch import WatchOptions
    from ognet_video.watch import watch as run_watch

    if name is not None:  # checked before any camera connects (the run folder is made at the first frame)
        plain_name(name, "run name (--name)")
    sources, overrides = split_args(source)
    if not sources:
        raise UserError("watch needs a SOURCE: a video, frames, a webcam index, a URL or a cameras .yaml")
    det, label = load_model(model, device)
    runtime_overrides(det, overrides)
    det.calibration = with_threshold(det.calibration, threshold)
    opts = WatchOptions(save_video=save_video, show=show, stride=stride, max_frames=max_frames, fps=fps,
                        connect_timeout=connect_timeout, sinks=sink, update_every=update_every,
                        metrics_port=metrics_port, metrics_host=metrics_host, clips=clips, pre_roll=pre_roll,
                        post_roll=post_roll, clip_days=clip_days, clip_gb=clip_gb,
                        review_port=review_port, review_host=review_host)  # fmt: skip
    was = common.console.stderr
    common.console.stderr = was or "stdout" in sink  # stdout carries the messages only
    try:
        res = run_watch(list(sources), det, opts, project=project, name=name, label=label, console=common.console)
    finally:
        common.console.stderr = was
    if res.exit_code:
        raise typer.Exit(res.exit_code)
