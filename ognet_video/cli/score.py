"""``ognet-video score INPUT...``: an archive of recordings, resumable."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ognet_video.cli import common
from ognet_video.cli.common import examples, flag, model_opt, runtime_overrides, split_args, threshold_opt  # noqa: F401
from ognet_video.errors import UserError  # noqa: F401


@common.app.command(epilog=examples("ognet-video score recordings/ --recursive",
                              "ognet-video score 'archive/**/*.mp4' --model runs/train/lobby-1 --timelines",
                              "ognet-video score recordings/ --recursive --resume"))  # fmt: skip
def score(
    inputs: list[str] = typer.Argument(
        ..., help="Video files, frame folders, folders of those, globs (quote globs).", metavar="INPUT..."
    ),  # fmt: skip
    model: Path = model_opt(),
    project: Path = typer.Option(
        Path("runs/score"), "--project", help="Parent folder of numbered runs.", metavar="DIR"
    ),
    name: str = typer.Option(None, "--name", help="Run name (default: the first input's name).", metavar="NAME"),
    resume: bool = flag(False, "--resume", "Continue the newest run of this name: finished clips are skipped."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Search folders at every depth.", metavar=""),
    workers: int = typer.Option(
        None,
        "--workers",
        "-w",
        metavar="N",
        help="Clips decoded at once (default: 1 on CPU, 2 on GPU); ray: clips scored at once (default: all CPUs).",
    ),  # fmt: skip
    timelines: bool = flag(False, "--timelines", "Also write a score-timeline PNG per clip."),
    save_video: bool = flag(False, "--save-video", "Also write an annotated MP4 per clip (slow)."),
    clips: bool = typer.Option(
        True, "--clips/--no-clips", metavar="", help="Keep an H.264 clip of each event (events/ in the clip's folder).",
    ),  # fmt: skip
    pre_roll: float = typer.Option(3.0, "--pre-roll", help="Seconds of each clip before its event.", metavar="S"),
    post_roll: float = typer.Option(3.0, "--post-roll", help="Seconds of each clip after its event.", metavar="S"),
    fps: float = typer.Option(10.0, "--fps", help="Frame rate of frame folders, for the time column.", metavar="FPS"),
    threshold: float = threshold_opt(),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N].", metavar="DEVICE"),
    engine: str = typer.Option(
        "local",
        "--engine",
        help='local, or ray: one Ray task per clip (pip install "ognet-video\\[ray]").',
        metavar="ENGINE",
    ),  # fmt: skip
    address: str = typer.Option(
        None,
        "--address",
        help="Ray cluster: auto or HOST:PORT (default: start Ray on this machine).",
        metavar="ADDR",
    ),  # fmt: skip
    cpus_per_task: float = typer.Option(1.0, "--cpus-per-task", help="Ray: CPUs per clip.", metavar="N"),
    gpus_per_task: float = typer.Option(
        0.0, "--gpus-per-task", help="Ray: GPUs per clip (0.5: two clips share one).", metavar="F"
    ),
) -> None:
    """Score an archive: per-clip scores.csv + events.jsonl, summary.csv in runs/score/NAME-N; --resume continues.

    Exit code: 0 when every clip is scored, 2 for bad arguments, 10 + the number of clips not scored (at most
    110), 130 after Ctrl-C, 143 after SIGTERM.
    """
    from ognet_video.score import RayOptions, ScoreOptions, summary_table
    from ognet_video.score import score as run_score
    from ognet_video.stream.scoring import misfit_warning

    paths, overrides = split_args(inputs)
    opts = ScoreOptions(recursive=recursive, workers=workers, timelines=timelines, save_video=save_video, fps=fps,
                        clips=clips, pre_roll=pre_roll, post_roll=post_roll)  # fmt: skip
    res = run_score(paths, model, opts=opts, project=project, name=name, resume=resume, device=device,
                    overrides=overrides, threshold=threshold, engine=engine, console=common.console,
                    ray_opts=RayOptions(address, cpus_per_task, gpus_per_task))  # fmt: skip
    common.console.print(summary_table(res.records, res.out))
    shares = {r.name: (r.anomalous_share or 0.0, r.frames) for r in res.records if r.ok}
    if warn := misfit_warning(shares):
        common.console.print(f"[yellow]{escape(warn)}[/]", highlight=False)
    rate = f" ({res.frames / res.seconds:.0f} fps)" if res.frames else ""
    common.console.print(
        f"scored {res.scored} clips, {res.frames} frames in {res.seconds:.1f} s{rate}; {res.skipped} skipped "
        f"(finished earlier)\noutputs: {res.out}/summary.csv, clips/NAME/scores.csv + events.jsonl; "
        f"to resume or add clips: the same command with --resume",
        highlight=False,
    )
    if res.interrupted:
        common.console.print(f"[yellow]stopped ({res.interrupted})[/]: finished clips are kept; --resume continues")
    elif res.failed:
        common.console.print(
            f"[red]{len(res.failed)} of {len(res.records)} clips not scored[/] (reasons in summary.csv)"
        )
    if res.exit_code:
        raise typer.Exit(res.exit_code)
