"""``ognet-video eval`` and ``info``: a model's report on a labelled test split, and what a checkpoint holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ognet_video.cli import common
from ognet_video.cli.common import examples, flag, model_opt, runtime_overrides, split_args  # noqa: F401
from ognet_video.config import RUNTIME_KEYS
from ognet_video.errors import UserError  # noqa: F401

if TYPE_CHECKING:
    from ognet_video.models.detector import Detector


def report(
    model_path: Path, ds, out_dir: Path, dev, overrides: list[str] | None = None, det: Detector | None = None
) -> None:
    """Evaluate a checkpoint (``det`` when already loaded) on ``ds.test`` into ``out_dir`` and print the tables
    (train and eval share it)."""
    from ognet_video.evaluation.evaluate import evaluate, metrics_table, operator_table, per_clip_table
    from ognet_video.models.detector import Detector

    det = det or Detector.load(model_path, device=dev)
    runtime_overrides(det, overrides or [])
    res = evaluate(det, ds.test, out_dir, common.console)
    common.console.print(metrics_table(res.metrics, f"{ds.name}: frame-level AUC ({len(ds.test)} test clips)"))
    common.console.print(per_clip_table(res.metrics))
    common.console.print(operator_table(res.metrics))
    thr = res.metrics["at_threshold"]
    common.console.print(
        f"at the calibrated threshold (causal): recall {thr['recall']:.3f}, false-positive rate "
        f"{thr['false_positive_rate']:.3f}  |  speed: {res.metrics['ms_per_frame']:.1f} ms/frame "
        f"(decode + extract + model)  |  report: {out_dir}/metrics.json, roc.png, timelines/"
    )


@common.app.command("eval", epilog=examples("ognet-video eval --data data/UCSDped2",
                                      "ognet-video eval --model runs/train/ped1-1 --data data/UCSDped1",
                                      "ognet-video eval --model runs/train/ped2-2 --data data/UCSDped2 --name seed2"))  # fmt: skip
def eval_cmd(
    overrides: list[str] = typer.Argument(None, help=f"Only {', '.join(RUNTIME_KEYS)}.", metavar="KEY=VALUE"),
    data: Path = typer.Option(..., "--data", help="Dataset root with the test split.", metavar="DIR"),
    model: Path = model_opt(),
    dataset: str = typer.Option(
        None,
        "--dataset",
        help="'ped2', 'ped1' (built-in labels) or 'folder' (labels.json); default: the model's "
        "dataset when it is ped1 or ped2, else ped2.",
        metavar="NAME",
    ),  # fmt: skip
    project: Path = typer.Option(Path("runs/eval"), "--project", help="Parent folder of numbered runs.", metavar="DIR"),
    name: str = typer.Option(None, "--name", help="Run name (default: the model's run name).", metavar="NAME"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N].", metavar="DEVICE"),
) -> None:
    """Frame-level AUC / EER (micro, macro, per clip) with no, causal and offline smoothing -> runs/eval/NAME-N."""
    from ognet_video.data import UCSD_SUBSETS, load_dataset
    from ognet_video.models.detector import Detector, pick_device
    from ognet_video.runs import find_model, new_run_dir

    _, bad = split_args(overrides)
    if len(bad) != len(overrides or []):
        raise UserError(f"eval takes no inputs besides --data; got {' '.join(split_args(overrides)[0])!r}")
    path = find_model(model)
    dev = pick_device(device)
    det = Detector.load(path, device=dev)
    trained_on = str(det.meta.get("dataset", ""))  # a ped1 model is evaluated on Ped1 without --dataset
    ds = load_dataset((dataset or (trained_on if trained_on in UCSD_SUBSETS else "ped2")).lower(), data)
    out = new_run_dir(project, name or (path.parent.name if path.stem == "model" else path.stem))
    report(path, ds, out, dev, bad, det=det)


@common.app.command(epilog=examples("ognet-video info", "ognet-video info --model runs/train/ped2-1"))
def info(model: Path = model_opt()) -> None:
    """Show what a checkpoint holds: preset, config, calibration, training facts."""
    from ognet_video.models.detector import Detector
    from ognet_video.runs import find_model

    det = Detector.load(find_model(model))
    meta = {k: v for k, v in det.meta.items() if k not in ("config",)} | {
        "members": len(det.members) or det.meta.get("export", {}).get("members", 0)
    }  # an .onnx holds no torch members
    if isinstance(meta.get("health"), dict):  # the camera checks' reference: its ranges, not its pictures
        h, w = meta["health"]["background"]["shape"]
        meta["health"] = {k: v for k, v in meta["health"].items() if k not in ("background", "cells")} | {
            "background": f"{w}x{h} median picture",
            "cells": f"{len(meta['health']['cells'])} texture cells",
        }
    if det.objects is not None:  # the object cue's density: its scale, not its thousands of reference objects
        meta["objects"] = {k: v for k, v in meta["objects"].items() if k != "reference"} | {
            "reference": f"{len(det.objects.reference)} normal objects"
        }
    if isinstance(meta.get("heldout_scores"), dict):  # the calibration footage's raw scores, kept for --feedback
        meta["heldout_scores"] = f"{len(meta['heldout_scores'].get('clips', []))} clips' raw scores"
    common.console.print_json(json.dumps(meta))
    common.console.print_json(json.dumps(det.cfg.to_dict()))
    said = (det.meta.get("calibration_footage") or {}).get("feedback")
    if isinstance(said, dict):
        common.console.print(f"calibrated with feedback: {len(said['normal'])} event(s) marked normal no longer alarm, "
                             f"{len(said['real'])} marked real still do (threshold {said['threshold']:+.3f})",
                             highlight=False)  # fmt: skip
    if isinstance(det.meta.get("validation"), dict):  # models trained before the check have none
        from ognet_video.evaluation.validation import check_line

        common.console.print(check_line(det.meta["validation"]), highlight=False)
