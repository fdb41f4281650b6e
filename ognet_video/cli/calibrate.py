"""``ognet-video calibrate --model RUN INPUT...``: refit the decision on more normal footage, no retraining."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ognet_video.cli import common
from ognet_video.cli.common import examples, model_opt
from ognet_video.errors import UserError


def _rate(cal) -> str:
    if cal is None:
        return "none"
    if cal.rule == "alarm_rate":
        alarms = "false alarm" if cal.alarms_per_hour == 1 else "false alarms"
        return f"{cal.threshold:+.3f} (target {cal.alarms_per_hour:g} {alarms} per hour; {cal.percentile:.2f}% of frames below)"
    return f"{cal.threshold:+.3f} ({cal.percentile:g}th percentile of smoothed frames)"


@common.app.command(epilog=examples("ognet-video calibrate --model runs/train/lobby-1 lobby-week2/",
                                    "ognet-video calibrate -m runs/train/gate-1 'dumps/*.mp4' --alarms-per-hour 0.5",
                                    "ognet-video calibrate -m runs/train/lobby-1 --feedback runs/watch/lobby-3"))  # fmt: skip
def calibrate(
    inputs: list[str] = typer.Argument(
        None,
        help="Normal footage: video files, frame folders, folders of those, globs (quote globs).",
        metavar="INPUT...",
    ),  # fmt: skip
    model: Path = model_opt(),
    alarms_per_hour: float = typer.Option(
        None,
        "--alarms-per-hour",
        help="Target false alarms per hour of normal video (default: the model's, 1).",
        metavar="N",
    ),  # fmt: skip
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Search folders at every depth.", metavar=""),
    fps: float = typer.Option(10.0, "--fps", help="Frame rate of frame folders.", metavar="FPS"),
    feedback: list[Path] = typer.Option(
        [], "--feedback", metavar="RUN",
        help="A watch or score run whose events were labelled on the review page: events marked normal stop "
        "alarming, events marked real must still alarm. Repeatable; without INPUT the model's own calibration "
        "footage is reused.",
    ),  # fmt: skip
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N].", metavar="DEVICE"),
) -> None:
    """Refit the crowd correction, normalisation and threshold on normal footage the model has not seen; the
    networks stay.

    The model file is rewritten in place (so the run folder's next watch, score or eval uses it) and the
    previous one is kept next to it as model-before-calibrate-N.safetensors. Only the footage given here
    calibrates: include earlier footage to keep it in.
    """
    from ognet_video.calibrate.recalibrate import recalibrate
    from ognet_video.runs import find_model

    if not inputs and not feedback:
        raise UserError("calibrate needs normal footage (INPUT...) or --feedback RUN (labelled events), or both")
    common.set_stop_hint(lambda: "the model was not changed: run the same command again")
    warn = lambda msg: common.console.print(f"[yellow]{escape(msg)}[/]", highlight=False)  # noqa: E731
    res = recalibrate(find_model(model), inputs or [], alarms_per_hour, fps, recursive, device, log=warn,
                      feedback=feedback)  # fmt: skip
    new, secs = res.new, res.new.seconds or 0.0
    if res.feedback is not None:
        fb = res.feedback
        raised = fb["threshold"] > fb["fitted_threshold"]
        common.console.print(f"feedback: {len(fb['normal'])} event(s) marked normal now below the threshold"
                             + (f" (raised from {fb['fitted_threshold']:+.3f})" if raised else "")
                             + f", {len(fb['real'])} marked real still alarm", highlight=False)  # fmt: skip
    hours = secs / 3600
    before = "" if res.old_alarms is None else f"; the previous threshold raised {res.old_alarms} on it"
    common.console.print(
        f"calibrated on {res.clips} clips, {new.frames} frames ({secs / 60:.1f} min)\n"
        f"threshold before: {_rate(res.old)}\nthreshold now:    {_rate(new)}\n"
        f"false alarms on this footage now: {res.new_alarms} ({res.new_alarms / hours:.1f} per hour){before}\n"
        f"{escape(res.camera)}\n"
        f"wrote {escape(str(res.path))}; the previous model is kept as {escape(str(res.kept))}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    if secs < 600:
        common.console.print(f"[yellow]note:[/] {secs / 60:.1f} min of footage is little to judge a rate per hour "
                             "by: the threshold extrapolates its tail; more normal footage (different times, "
                             "crowds, light) makes it hold better", highlight=False)  # fmt: skip
