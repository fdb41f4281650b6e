"""``ognet-video``: a thin layer that parses arguments and wires the stages together.

One convention for every command, as Ultralytics has it: the model is ``--model/-m`` (a run folder or a
checkpoint; default: the newest finished run in runs/train), outputs go to numbered folders
``--project/NAME-N`` (``--name``), ``--resume`` continues the newest one, and ``section.key=value``
arguments override settings.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ognet_video.config import RUNTIME_KEYS
from ognet_video.errors import UserError

console = Console()
app = typer.Typer(
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


def _flag(default: bool, decl: str, help: str) -> bool:  # noqa: A002 - typer's word
    return typer.Option(default, decl, help=help, metavar="")


def _model_opt() -> Path | None:
    return typer.Option(None, "--model", "-m", help="Run folder or checkpoint (default: the newest finished run).",
                        metavar="RUN")  # fmt: skip


def _examples(*lines: str) -> str:
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


def _split(args: list[str] | None) -> tuple[list[str], list[str]]:
    """Positional arguments -> (inputs, ``section.key=value`` overrides)."""
    args = args or []
    return [a for a in args if not OVERRIDE.match(a)], [a for a in args if OVERRIDE.match(a)]


def _runtime_overrides(det, overrides: list[str]) -> None:
    from ognet_video.config import apply_runtime_overrides

    apply_runtime_overrides(det.cfg, overrides)


@data_app.command("download", epilog=_examples("ognet-video data download ped2 --root data"))
def data_download(
    dataset: str = typer.Argument("ped2", help="Only 'ped2' (UCSD Ped2) can be downloaded."),
    root: Path = typer.Option(Path("data"), "--root", help="Folder to download and extract into.", metavar="DIR"),
    url: str = typer.Option(
        None, "--url", help="Mirror of UCSD_Anomaly_Dataset.tar.gz (sha256 is still checked).", metavar="URL"
    ),  # fmt: skip
) -> None:
    """Download the official UCSD tarball, verify its sha256 and extract UCSDped2/ safely."""
    from ognet_video.data.ped2 import PED2_URL, download_ped2

    if dataset.lower() != "ped2":
        raise UserError(f"cannot download {dataset!r}: only ped2 is supported")
    out = download_ped2(root, url or PED2_URL)
    console.print(f"[green]Ped2 ready[/] at {out}  (use: --data {out})")


@data_app.command("verify", epilog=_examples("ognet-video data verify ped2 --data data/UCSDped2"))
def data_verify(
    dataset: str = typer.Argument("ped2"),
    data: Path = typer.Option(..., "--data", help="Dataset root (either layout).", metavar="DIR"),
    quick: bool = _flag(False, "--quick", "Check layout and counts only; do not decode every frame."),
) -> None:
    """Check a Ped2 copy: layout, clip and frame counts, labels, every frame readable, MANIFEST.sha256 if present."""
    from rich.table import Table

    from ognet_video.data.ped2 import verify_ped2

    if dataset.lower() != "ped2":
        raise UserError("verify knows only ped2")
    info = verify_ped2(data, read_frames=not quick)
    t = Table(title=f"Ped2 at {data}: OK")
    t.add_column("check")
    t.add_column("value", justify="right")
    for k, v in info.items():
        t.add_row(k, str(v))
    console.print(t)


@app.command(epilog=_examples("ognet-video train ped2 --data data/UCSDped2",
                              "ognet-video train ped2 --data data/UCSDped2 --config configs/ped2-paper.yaml --device cuda",
                              "ognet-video train folder --data my-dataset train.epochs=4 --name lobby",
                              "ognet-video train ped2 --data data/UCSDped2 --resume"))  # fmt: skip
def train(
    dataset: str = typer.Argument(..., help="'ped2', or 'folder' for any frames-layout dataset."),
    overrides: list[str] = typer.Argument(None, help="Settings, e.g. train.epochs=6 train.seed=1", metavar="KEY=VALUE"),
    data: Path = typer.Option(
        ..., "--data", help="Dataset root: UCSD layout or training/frames + testing/frames.", metavar="DIR"
    ),  # fmt: skip
    config: Path = typer.Option(
        None, "--config", "-c", help="YAML settings (default: the CPU recipe, configs/ped2-cpu.yaml).", metavar="FILE"
    ),  # fmt: skip
    project: Path = typer.Option(
        Path("runs/train"), "--project", help="Parent folder of numbered runs.", metavar="DIR"
    ),
    name: str = typer.Option(None, "--name", help="Run name (default: the dataset name).", metavar="NAME"),
    resume: bool = _flag(False, "--resume", "Continue the newest unfinished run of this name."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N].", metavar="DEVICE"),
    evaluate_after: bool = typer.Option(
        True, "--eval/--no-eval", help="Evaluate on the test split when done.", metavar=""
    ),  # fmt: skip
) -> None:
    """Train OGNet (phase one + phase two), calibrate on held-out normal clips, save runs/train/NAME-N."""
    from ognet_video.config import load_config
    from ognet_video.data import load_dataset
    from ognet_video.detector import pick_device
    from ognet_video.runs import latest_run_dir, new_run_dir
    from ognet_video.train import train as run_train

    cfg = load_config(config, overrides)
    ds = load_dataset(dataset.lower(), data)
    dev = pick_device(device)
    run_name = name or dataset.lower()
    if resume:
        run_dir = latest_run_dir(project, run_name, need="last.safetensors")
        if (run_dir / "model.safetensors").is_file():
            raise UserError(f"{run_dir} already finished; nothing to resume (start a new run without --resume)")
    else:
        run_dir = new_run_dir(project, run_name)
    console.print(
        f"training [bold]{cfg.model.preset}[/] preset on {ds.name} ({ds.layout} layout) -> {run_dir} on {dev}"
    )
    try:
        res = run_train(cfg, ds, run_dir, resume=resume, device=dev, console=console)
    except BaseException:
        if not resume and not any(run_dir.glob("*.safetensors")):  # nothing trained: leave no empty run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    console.print(f"[green]done[/] in {res.minutes:.1f} min on {res.patches} patches: {res.model_path}")
    if evaluate_after and any(c.labels is not None for c in ds.test):
        _evaluate(res.model_path, ds, run_dir, dev)


def _evaluate(model_path: Path, ds, out_dir: Path, dev, overrides: list[str] | None = None) -> None:
    from ognet_video.detector import Detector
    from ognet_video.evaluate import evaluate, metrics_table, per_clip_table

    det = Detector.load(model_path, device=dev)
    _runtime_overrides(det, overrides or [])
    res = evaluate(det, ds.test, out_dir, console)
    console.print(metrics_table(res.metrics, f"{ds.name}: frame-level AUC ({len(ds.test)} test clips)"))
    console.print(per_clip_table(res.metrics))
    thr = res.metrics["at_threshold"]
    console.print(
        f"at the calibrated threshold (causal): recall {thr['recall']:.3f}, false-positive rate "
        f"{thr['false_positive_rate']:.3f}  |  speed: {res.metrics['ms_per_frame']:.1f} ms/frame "
        f"(decode + extract + model)  |  report: {out_dir}/metrics.json, roc.png, timelines/"
    )


@app.command("eval", epilog=_examples("ognet-video eval --data data/UCSDped2",
                                      "ognet-video eval --model runs/train/ped2-2 --data data/UCSDped2 --name seed2"))  # fmt: skip
def eval_cmd(
    overrides: list[str] = typer.Argument(None, help=f"Only {', '.join(RUNTIME_KEYS)}.", metavar="KEY=VALUE"),
    data: Path = typer.Option(..., "--data", help="Dataset root with the test split.", metavar="DIR"),
    model: Path = _model_opt(),
    dataset: str = typer.Option(
        "ped2", "--dataset", help="'ped2' (built-in labels) or 'folder' (labels.json).", metavar="NAME"
    ),  # fmt: skip
    project: Path = typer.Option(Path("runs/eval"), "--project", help="Parent folder of numbered runs.", metavar="DIR"),
    name: str = typer.Option(None, "--name", help="Run name (default: the model's run name).", metavar="NAME"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N].", metavar="DEVICE"),
) -> None:
    """Frame-level AUC / EER (micro, macro, per clip) with no, causal and offline smoothing -> runs/eval/NAME-N."""
    from ognet_video.data import load_dataset
    from ognet_video.detector import pick_device
    from ognet_video.runs import find_model, new_run_dir

    _, bad = _split(overrides)
    if len(bad) != len(overrides or []):
        raise UserError(f"eval takes no inputs besides --data; got {' '.join(_split(overrides)[0])!r}")
    path = find_model(model)
    ds = load_dataset(dataset.lower(), data)
    out = new_run_dir(project, name or (path.parent.name if path.stem == "model" else path.stem))
    _evaluate(path, ds, out, pick_device(device), bad)


@app.command(epilog=_examples("ognet-video info", "ognet-video info --model runs/train/ped2-1"))
def info(model: Path = _model_opt()) -> None:
    """Show what a checkpoint holds: preset, config, calibration, training facts."""
    from ognet_video.detector import Detector
    from ognet_video.runs import find_model

    det = Detector.load(find_model(model))
    meta = {k: v for k, v in det.meta.items() if k not in ("config",)} | {"members": len(det.members)}
    console.print_json(json.dumps(meta))
    console.print_json(json.dumps(det.cfg.to_dict()))


@app.command(epilog=_examples("ognet-video demo", "ognet-video demo --seed 1"))
def demo(
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic clips and the training.", metavar="N"),
    project: Path = typer.Option(Path("runs"), "--project", help="Where the clips and the run go.", metavar="DIR"),
) -> None:
    """Offline demo: synthetic walkway clips, a tiny model trained in a minute or two, its AUC, what to try next."""
    from ognet_video.demo import run_demo

    res = run_demo(project=project, seed=seed, console=console)
    console.print(f"\nnext, watch a clip with this model:\n  [bold]{escape(res.next_command)}[/]", highlight=False)


@app.command(epilog=_examples("ognet-video score recordings/ --recursive",
                              "ognet-video score 'archive/**/*.mp4' --model runs/train/lobby-1 --timelines",
                              "ognet-video score recordings/ --recursive --resume"))  # fmt: skip
def score(
    inputs: list[str] = typer.Argument(
        ..., help="Video files, frame folders, folders of those, globs (quote globs).", metavar="INPUT..."
    ),  # fmt: skip
    model: Path = _model_opt(),
    project: Path = typer.Option(
        Path("runs/score"), "--project", help="Parent folder of numbered runs.", metavar="DIR"
    ),
    name: str = typer.Option(None, "--name", help="Run name (default: the first input's name).", metavar="NAME"),
    resume: bool = _flag(False, "--resume", "Continue the newest run of this name: finished clips are skipped."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Search folders at every depth.", metavar=""),
    workers: int = typer.Option(
        None, "--workers", "-w", help="Clips decoded at once (default: 1 on CPU, 2 on GPU).", metavar="N"
    ),  # fmt: skip
    timelines: bool = _flag(False, "--timelines", "Also write a score-timeline PNG per clip."),
    save_video: bool = _flag(False, "--save-video", "Also write an annotated MP4 per clip (slow)."),
    fps: float = typer.Option(10.0, "--fps", help="Frame rate of frame folders, for the time column.", metavar="FPS"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N].", metavar="DEVICE"),
) -> None:
    """Score an archive: per-clip scores.csv + events.jsonl, summary.csv in runs/score/NAME-N; --resume continues.

    Exit code: 0 when every clip is scored, 2 for bad arguments, 10 + the number of clips not scored (at most
    110), 130 after Ctrl-C, 143 after SIGTERM.
    """
    from ognet_video.score import ScoreOptions, summary_table
    from ognet_video.score import score as run_score

    paths, overrides = _split(inputs)
    opts = ScoreOptions(recursive=recursive, workers=workers, timelines=timelines, save_video=save_video, fps=fps)
    res = run_score(paths, model, opts=opts, project=project, name=name, resume=resume, device=device,
                    overrides=overrides, console=console)  # fmt: skip
    console.print(summary_table(res.records, res.out))
    rate = f" ({res.frames / res.seconds:.0f} fps)" if res.frames else ""
    console.print(
        f"scored {res.scored} clips, {res.frames} frames in {res.seconds:.1f} s{rate}; {res.skipped} skipped "
        f"(finished earlier)\noutputs: {res.out}/summary.csv, clips/NAME/scores.csv + events.jsonl; "
        f"to resume or add clips: the same command with --resume",
        highlight=False,
    )
    if res.interrupted:
        console.print(f"[yellow]stopped ({res.interrupted})[/]: finished clips are kept; --resume continues")
    elif res.failed:
        console.print(f"[red]{len(res.failed)} of {len(res.records)} clips not scored[/] (reasons in summary.csv)")
    if res.exit_code:
        raise typer.Exit(res.exit_code)


@app.command("watch", epilog=_examples("ognet-video watch camera.mp4 --save-video",
                                       "ognet-video watch rtsp://user:pass@camera/stream --model runs/train/lobby-1",
                                       "ognet-video watch 0 --show", "ognet-video watch 'frames/*.jpg' --fps 25"))  # fmt: skip
def watch_cmd(
    source: list[str] = typer.Argument(
        ...,
        help="Video file, webcam index (0), rtsp:// or http:// URL, folder of "
        "frames, or a quoted glob; and score.event_frames=N / score.batch_frames=N.",
        metavar="SOURCE",
    ),  # fmt: skip
    model: Path = _model_opt(),
    save_video: bool = _flag(False, "--save-video", "Also write annotated.mp4 (heat map, score strip)."),
    show: bool = _flag(False, "--show", "Show the annotated frames in a window (needs a display)."),
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

    sources, overrides = _split(source)
    if len(sources) != 1:
        raise UserError(f"watch takes one SOURCE, got {len(sources)}: {' '.join(map(repr, sources)) or 'none'}")
    det, label = load_model(model, device)
    _runtime_overrides(det, overrides)
    opts = WatchOptions(save_video=save_video, show=show, stride=stride, max_frames=max_frames, fps=fps,
                        connect_timeout=connect_timeout)  # fmt: skip
    res = run_watch(sources[0], det, opts, project=project, name=name, label=label, console=console)
    if res.exit_code:
        raise typer.Exit(res.exit_code)


def main() -> None:
    """Entry point: user mistakes become one red line and exit code 2, never a traceback; SIGTERM is Ctrl-C."""
    from ognet_video.engine import install_signal_handlers

    install_signal_handlers()
    try:
        app()  # standalone: typer/click print usage errors themselves (exit 2)
    except UserError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # a read-only or full disk, a path under a file: the environment, not a bug
        where = f" {exc.filename}" if exc.filename else ""
        what = exc.strerror or type(exc).__name__
        console.print(f"[red]error:[/]{escape(where)}: {escape(what)}; check the path, its permissions and free space",
                      highlight=False, soft_wrap=True)  # fmt: skip
        sys.exit(1)
    except KeyboardInterrupt as exc:  # outside a run loop (e.g. while a model loads): nothing to keep
        from ognet_video.engine import Terminated

        console.print("[yellow]stopped[/]")
        sys.exit(143 if isinstance(exc, Terminated) else 130)


if __name__ == "__main__":
    main()
