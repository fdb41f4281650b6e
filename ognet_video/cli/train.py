"""``ognet-video train``: phase one + phase two, calibration, evaluation when the data has labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from ognet_video.cli import common
from ognet_video.cli.common import examples, flag, model_opt, runtime_overrides, split_args  # noqa: F401
from ognet_video.errors import UserError  # noqa: F401


@common.app.command(epilog=examples("ognet-video train ped2 --data data/UCSDped2",
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
    resume: bool = flag(False, "--resume", "Continue the newest unfinished run of this name."),
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
    common.console.print(
        f"training [bold]{cfg.model.preset}[/] preset on {ds.name} ({ds.layout} layout) -> {run_dir} on {dev}"
    )
    try:
        res = run_train(cfg, ds, run_dir, resume=resume, device=dev, console=common.console)
    except BaseException:
        if not resume and not any(run_dir.glob("*.safetensors")):  # nothing trained: leave no empty run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    common.console.print(f"[green]done[/] in {res.minutes:.1f} min on {res.patches} patches: {res.model_path}")
    if evaluate_after and any(c.labels is not None for c in ds.test):
        from ognet_video.cli.evaluate import report

        report(res.model_path, ds, run_dir, dev)
