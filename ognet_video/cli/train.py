"""``ognet-video train``: phase one + phase two, calibration, evaluation when the data has labels.

Two kinds of input: a named dataset with ``--data`` (``ped2``, ``ped1``, ``folder``), or recordings given as ``score``
takes them (video files, frame folders, folders of them, globs), which have no test split. Under torchrun
(``torchrun --nproc-per-node N -m ognet_video train ...``) N processes train together; rank 0 alone prints,
writes the run folder, calibrates and evaluates (docs/scale-out.md).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import typer
from rich.markup import escape

from ognet_video.cli import common
from ognet_video.cli.common import examples, flag, model_opt, runtime_overrides, split_args  # noqa: F401
from ognet_video.errors import UserError


@common.app.command(epilog=examples("ognet-video train ped2 --data data/UCSDped2",
                              "ognet-video train ped2 --data data/UCSDped2 --config configs/ped2-paper.yaml --device cuda",
                              "ognet-video train ped1 --data data/UCSDped1",
                              "ognet-video train folder --data my-dataset train.epochs=4 --name lobby",
                              "ognet-video train 'lobby-week1/*.mp4' --name lobby",
                              "ognet-video train rtsp-dumps/ --name gate --mask gate-ignore.png train.holdout_seconds=600",
                              "ognet-video train ped2 --data data/UCSDped2 --resume",
                              "torchrun --nproc-per-node 2 -m ognet_video train ped2 --data data/UCSDped2"))  # fmt: skip
def train(
    args: list[str] = typer.Argument(
        ...,
        help="'ped2', 'ped1' or 'folder' with --data; or recordings: video files, frame "
        "folders, folders of those, globs (quoted). Then settings, e.g. train.epochs=6",
        metavar="DATASET|INPUT... [KEY=VALUE]...",
    ),  # fmt: skip
    data: Path = typer.Option(
        None, "--data", help="Root of a named dataset: UCSD layout or training/frames + testing/frames.", metavar="DIR"
    ),  # fmt: skip
    config: Path = typer.Option(
        None, "--config", "-c", help="YAML settings (default: the CPU recipe, configs/ped2-cpu.yaml).", metavar="FILE"
    ),  # fmt: skip
    mask: Path = typer.Option(
        None, "--mask", help="Ignore mask image: white = ignore (neither trained on nor scored).", metavar="PNG"
    ),  # fmt: skip
    recursive: bool = flag(False, "--recursive", "Search folders of recordings at every depth."),
    fps: float = typer.Option(10.0, "--fps", help="Frame rate of frame folders given as recordings.", metavar="FPS"),
    project: Path = typer.Option(
        Path("runs/train"), "--project", help="Parent folder of numbered runs.", metavar="DIR"
    ),
    name: str = typer.Option(
        None, "--name", help="Run name (default: the dataset or first input's name).", metavar="NAME"
    ),  # fmt: skip
    resume: bool = flag(False, "--resume", "Continue the newest unfinished run of this name."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N].", metavar="DEVICE"),
    evaluate_after: bool = typer.Option(
        True, "--eval/--no-eval", help="Evaluate on the test split when done (datasets with labels).", metavar=""
    ),  # fmt: skip
) -> None:
    """Train OGNet (phase one + phase two), calibrate on held-out normal footage, save runs/train/NAME-N."""
    from rich.console import Console

    from ognet_video.config import load_config
    from ognet_video.models.detector import pick_device
    from ognet_video.training import distributed
    from ognet_video.training.train import train as run_train

    if not distributed.is_main_process():  # torchrun's other ranks: rank 0 alone prints (errors included)
        common.console = Console(file=io.StringIO())
    inputs, overrides = split_args(args)
    cfg = load_config(config, overrides)
    with distributed.joined(pick_device(device)) as (world, dev):  # the group is left on every path
        with world.together():
            ds, run_name = _load(inputs, data, cfg, recursive, fps)
            if mask is not None:
                _apply_mask(cfg, mask)
        run_name = name or run_name
        run_dir = Path(world.from_main(lambda: str(_run_dir(project, run_name, resume))))  # rank 0 picks it
        common.set_stop_hint(lambda: f"resume with: {common.resume_command()}" if (run_dir / "last.safetensors").is_file()
                             else "nothing saved yet (stopped before the first epoch ended): run the command again")  # fmt: skip
        common.console.print(
            f"training [bold]{cfg.model.preset}[/] preset on {escape(ds.name)} ({ds.layout} layout) -> {run_dir} on {dev}"
        )
        try:
            res = run_train(cfg, ds, run_dir, resume=resume, device=dev, console=common.console, world=world)
        except BaseException as exc:
            if world.is_main and not resume and not any(run_dir.glob("*.safetensors")):  # leave no empty run behind
                shutil.rmtree(run_dir, ignore_errors=True)
            if world.active and distributed.is_dist_error(exc):
                raise UserError("another training process stopped mid-run (torchrun's report names it); continue "
                                "from the last finished epoch with --resume") from None  # fmt: skip
            raise
    if not world.is_main:
        return
    common.console.print(f"[green]done[/] in {res.minutes:.1f} min on {res.patches} patches: {res.model_path}")
    if res.validation is not None:
        from ognet_video.evaluation.validation import check_line

        common.console.print(check_line(res.validation), highlight=False)
    if evaluate_after and any(c.labels is not None for c in ds.test):
        from ognet_video.cli.evaluate import report

        report(res.model_path, ds, run_dir, dev)


def _run_dir(project: Path, run_name: str, resume: bool) -> Path:
    """The newest unfinished run of the name with ``resume``, else a new numbered one."""
    from ognet_video.runs import latest_run_dir, new_run_dir

    if not resume:
        return new_run_dir(project, run_name)
    run_dir = latest_run_dir(project, run_name, need="last.safetensors")
    if (run_dir / "model.safetensors").is_file():
        raise UserError(f"{run_dir} already finished; nothing to resume (start a new run without --resume)")
    return run_dir


def _load(inputs: list[str], data: Path | None, cfg, recursive: bool, fps: float):  # noqa: ANN202 - a pair
    """(the dataset or recordings, the default run name); recordings also fix the grid's width."""
    from ognet_video.data import LOADERS, load_dataset

    if data is not None:
        if len(inputs) != 1:
            known = " or ".join(repr(k) for k in sorted(LOADERS))
            raise UserError(f"--data is the root of a named dataset: give {known} before it (recordings are given "
                            "without --data)")  # fmt: skip
        return load_dataset(inputs[0].lower(), data), inputs[0].lower()
    if len(inputs) == 1 and inputs[0].lower() in LOADERS and not Path(inputs[0]).exists():
        raise UserError(f"train {inputs[0]} needs --data DIR (the dataset's root folder)")
    if not inputs:
        raise UserError("no inputs: give a named dataset with --data, or recordings (videos, frame folders, globs)")
    from ognet_video.data.recordings import fit_geometry, load_recordings
    from ognet_video.sources.discover import run_name

    warn = lambda msg: common.console.print(f"[yellow]{escape(msg)}[/]", highlight=False)  # noqa: E731
    recs = load_recordings(inputs, cfg, recursive, fps, log=warn, name=run_name(inputs[0]))
    fit_geometry(cfg, recs, log=warn)
    r0 = recs.recordings[0]
    common.console.print(
        f"{len(recs.recordings)} recording(s), {sum(r.seconds for r in recs.recordings):.1f} s analysed at "
        f"{cfg.patches.analysis_fps:g} fps; frames {r0.shape[1]}x{r0.shape[0]} -> grid "
        f"{cfg.patches.width}x{cfg.patches.height}", highlight=False)  # fmt: skip
    common.console.print(escape(recs.holdout_line()), highlight=False)
    return recs, recs.name


def _apply_mask(cfg, path: Path) -> None:  # noqa: ANN001 - a Config
    """``--mask``: the cells the image covers join ``patches.ignore_cells``."""
    from ognet_video.config import set_value
    from ognet_video.patches import PatchExtractor, mask_cells
    from ognet_video.sources import read_gray

    if not path.is_file():
        raise UserError(f"mask image not found: {path}")
    cells = sorted(set(cfg.patches.ignore_cells) | set(mask_cells(cfg.patches, read_gray(path))))
    if len(cells) >= PatchExtractor(cfg.patches).num_cells:
        raise UserError(f"mask {path} covers every cell of the grid: nothing left to train on (white = ignore)")
    set_value(cfg, "patches.ignore_cells", cells, str(path))
    common.console.print(f"mask {escape(str(path))}: {len(cells)} cells ignored", highlight=False)
