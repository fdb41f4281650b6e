"""``ognet-video``: a thin layer that parses arguments and wires the stages together."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ognet_video.errors import UserError

console = Console()
app = typer.Typer(
    name="ognet-video",
    help="OGNet anomaly detection for fixed-camera video.\n\n"
    "Examples:\n\n"
    "  ognet-video demo\n\n"
    "  ognet-video data download ped2 --root data\n\n"
    "  ognet-video train ped2 --data data/ped2 --config configs/ped2-cpu.yaml train.epochs=6\n\n"
    "  ognet-video eval runs/train/ped2-1 --data data/ped2",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Get and check datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _dataset_name(name: str) -> str:
    name = name.lower()
    if name not in ("ped2", "folder"):
        raise UserError(f"unknown dataset {name!r}: use 'ped2' or 'folder' (any frames-layout dataset)")
    return name


@data_app.command("download")
def data_download(
    dataset: str = typer.Argument("ped2", help="Only 'ped2' (UCSD Ped2) can be downloaded."),
    root: Path = typer.Option(Path("data"), "--root", help="Folder to download and extract into."),
    url: str = typer.Option(None, "--url", help="Mirror of UCSD_Anomaly_Dataset.tar.gz (sha256 is still checked)."),
) -> None:
    """Download the official UCSD tarball, verify its sha256 and extract UCSDped2/ safely."""
    from ognet_video.data.ped2 import PED2_URL, download_ped2

    if dataset.lower() != "ped2":
        raise UserError(f"cannot download {dataset!r}: only ped2 is supported")
    out = download_ped2(root, url or PED2_URL)
    console.print(f"[green]Ped2 ready[/] at {out}  (use: --data {out})")


@data_app.command("verify")
def data_verify(
    dataset: str = typer.Argument("ped2"),
    data: Path = typer.Option(..., "--data", help="Dataset root (either layout)."),
    quick: bool = typer.Option(False, "--quick", help="Check layout and counts only; do not decode every frame."),
) -> None:
    """Check a Ped2 copy: layout, clip and frame counts, labels, every frame readable, MANIFEST.sha256 if present."""
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


@app.command()
def train(
    dataset: str = typer.Argument(..., help="'ped2', or 'folder' for any frames-layout dataset."),
    overrides: list[str] = typer.Argument(
        None, help="Config overrides, e.g. train.epochs=6 patches.channels=gray+diff"
    ),
    data: Path = typer.Option(..., "--data", help="Dataset root: UCSD layout or training/frames + testing/frames."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML preset, e.g. configs/ped2-cpu.yaml."),
    project: Path = typer.Option(Path("runs/train"), "--project", help="Parent folder of numbered runs."),
    name: str = typer.Option(None, "--name", help="Run name (default: the dataset name)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest unfinished run of this name."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    evaluate_after: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate on the test split when done."),
) -> None:
    """Train OGNet (phase one + phase two), calibrate on held-out normal clips, save a run folder."""
    from ognet_video.config import load_config
    from ognet_video.data import load_dataset
    from ognet_video.detector import pick_device
    from ognet_video.runs import latest_run_dir, new_run_dir
    from ognet_video.train import train as run_train

    ds_name = _dataset_name(dataset)
    cfg = load_config(config, overrides)
    ds = load_dataset(ds_name, data)
    dev = pick_device(device)
    run_name = name or ds_name
    if resume:
        run_dir = latest_run_dir(project, run_name, need="last.safetensors")
        if (run_dir / "model.safetensors").is_file():
            raise UserError(f"{run_dir} already finished; nothing to resume (start a new run without --resume)")
    else:
        run_dir = new_run_dir(project, run_name)
    console.print(
        f"training [bold]{cfg.model.preset}[/] preset on {ds_name} ({ds.layout} layout) -> {run_dir} on {dev}"
    )
    res = run_train(cfg, ds, run_dir, resume=resume, device=dev, console=console)
    console.print(f"[green]done[/] in {res.minutes:.1f} min on {res.patches} patches: {res.model_path}")
    if evaluate_after and any(c.labels is not None for c in ds.test):
        _evaluate(res.model_path, ds, run_dir, dev)


def _evaluate(model_path: Path, ds, out_dir: Path, dev) -> None:
    from ognet_video.detector import Detector
    from ognet_video.evaluate import evaluate, metrics_table, per_clip_table

    det = Detector.load(model_path, device=dev)
    res = evaluate(det, ds.test, out_dir, console)
    console.print(metrics_table(res.metrics, f"{ds.name}: frame-level AUC ({len(ds.test)} test clips)"))
    console.print(per_clip_table(res.metrics))
    thr = res.metrics["at_threshold"]
    console.print(
        f"at the calibrated threshold (causal): recall {thr['recall']:.3f}, false-positive rate "
        f"{thr['false_positive_rate']:.3f}  |  speed: {res.metrics['ms_per_frame']:.1f} ms/frame "
        f"(decode + extract + model)  |  report: {out_dir}/metrics.json, roc.png, timelines/"
    )


@app.command("eval")
def eval_cmd(
    model: Path = typer.Argument(..., help="Run folder (runs/train/ped2-1) or a .safetensors checkpoint."),
    data: Path = typer.Option(..., "--data", help="Dataset root with the test split."),
    dataset: str = typer.Option("ped2", "--dataset", help="'ped2' (built-in labels) or 'folder' (labels.json)."),
    out: Path = typer.Option(None, "--out", help="Report folder (default: the run folder)."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Frame-level AUC / EER (micro, macro, per clip) with no, causal and offline smoothing."""
    from ognet_video.data import load_dataset
    from ognet_video.detector import pick_device, resolve_model_path

    path = resolve_model_path(model)
    ds = load_dataset(_dataset_name(dataset), data)
    if out is None:
        out = path.parent if path.stem == "model" else path.parent / f"eval-{path.stem}"
    _evaluate(path, ds, out, pick_device(device))


@app.command()
def info(model: Path = typer.Argument(..., help="Run folder or checkpoint.")) -> None:
    """Show what a checkpoint holds: preset, config, calibration, training facts."""
    from ognet_video.detector import Detector, resolve_model_path

    det = Detector.load(resolve_model_path(model))
    meta = {k: v for k, v in det.meta.items() if k not in ("config",)} | {"members": len(det.members)}
    console.print_json(json.dumps(meta))
    console.print_json(json.dumps(det.cfg.to_dict()))


@app.command()
def demo(
    out: Path = typer.Option(None, "--out", help="Keep the synthetic data and run here (default: a temp folder)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Offline demo: synthetic walkway clips, a tiny model trained in a minute or two, its AUC."""
    from ognet_video.data import load_dataset
    from ognet_video.data.synthetic import write_walkway
    from ognet_video.demo import demo_config
    from ognet_video.detector import pick_device
    from ognet_video.train import train as run_train

    with tempfile.TemporaryDirectory() as tmp:
        base = out or Path(tmp)
        data_dir = write_walkway(base / "walkway", seed=seed)
        console.print(f"synthetic walkway clips written to {data_dir}")
        ds = load_dataset("folder", data_dir)
        cfg = demo_config(seed)
        res = run_train(cfg, ds, base / "run", console=console)
        _evaluate(res.model_path, ds, base / "run", pick_device("cpu"))


@app.command()
def score(
    inputs: list[str] = typer.Argument(..., help="Video files, frame folders, folders of those, globs (quote globs)."),
    model: Path = typer.Option(None, "--model", "-m", help="Run folder or checkpoint (default: newest finished run)."),
    out: Path = typer.Option(None, "--out", help="Output folder; reuse it to resume (default: runs/score/NAME-N)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Search folders at every depth."),
    workers: int = typer.Option(None, "--workers", "-w", help="Clips decoded at once (default: 1 on CPU, 2 on GPU)."),
    timelines: bool = typer.Option(False, "--timelines", help="Also write a score-timeline PNG per clip."),
    save_video: bool = typer.Option(False, "--save-video", help="Also write an annotated MP4 per clip (slow)."),
    fps: float = typer.Option(10.0, "--fps", help="Frame rate of frame folders, for the time column."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
) -> None:
    """Score an archive: per-clip scores.csv + events.jsonl, summary.csv; rerun the same command to resume.

    Exit code: 0 when every clip is scored, 2 for bad arguments, 10 + the number of failed clips (at most 110).
    """
    from ognet_video.batch import BatchOptions, summary_table
    from ognet_video.batch import score as run_score

    opts = BatchOptions(recursive=recursive, workers=workers, timelines=timelines, save_video=save_video, fps=fps)
    res = run_score(inputs, model, out, opts=opts, device=device, console=console)
    console.print(summary_table(res))
    rate = f" ({res.frames / res.seconds:.0f} fps)" if res.frames else ""
    console.print(
        f"scored {res.scored} clips, {res.frames} frames in {res.seconds:.1f} s{rate}; {res.skipped} skipped "
        f"(finished earlier)\noutputs: {res.out}/summary.csv, clips/NAME/scores.csv + events.jsonl; "
        f"to resume or add clips: the same command with --out {res.out}",
        highlight=False,
    )
    if res.failed:
        console.print(f"[red]{len(res.failed)} of {len(res.records)} clips failed[/] (reasons in summary.csv)")
        raise typer.Exit(res.exit_code)


@app.command("watch")
def watch_cmd(
    source: str = typer.Argument(
        ..., help="Video file, webcam index (0), rtsp:// or http:// URL, folder of frames, or a quoted glob."
    ),
    model: Path = typer.Option(None, "--model", "-m", help="Run folder or checkpoint (default: newest finished run)."),
    save_video: bool = typer.Option(False, "--save-video", help="Also write annotated.mp4 (heat map, score strip)."),
    show: bool = typer.Option(False, "--show", help="Show the annotated frames in a window (needs a display)."),
    stride: int = typer.Option(1, "--stride", help="Score every Nth frame; motion is measured between scored frames."),
    max_frames: int = typer.Option(None, "--max-frames", help="Stop after this many scored frames."),
    fps: float = typer.Option(10.0, "--fps", help="Frame rate of a frame folder or glob (timestamps, video)."),
    connect_timeout: float = typer.Option(15.0, "--connect-timeout", help="Seconds to wait for a camera or stream."),
    project: Path = typer.Option(Path("runs/watch"), "--project", help="Parent folder of numbered runs."),
    name: str = typer.Option(None, "--name", help="Run name (default: the source's name)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
) -> None:
    """Score a recorded or live camera as it plays: scores.jsonl, events.jsonl, live panel, speed line.

    Ctrl-C stops cleanly (exit code 130); a live source that is lost and does not come back exits with 1.
    """
    from ognet_video.watch import watch as run_watch

    res = run_watch(source, model, project=project, name=name, device=device, stride=stride, save_video=save_video,
                    show=show, max_frames=max_frames, fps=fps, connect_timeout=connect_timeout, console=console)  # fmt: skip
    if res.exit_code:
        raise typer.Exit(res.exit_code)


def main() -> None:
    """Entry point: user mistakes become one red line and exit code 2, never a traceback."""
    try:
        app()  # standalone: typer/click print usage errors themselves (exit 2)
    except UserError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
