"""``ognet-video score``: the resume record (``manifest``), the run (``run``,
``clip_folder``) and the summary (``summary``). ``score`` is what the command does."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ognet_video.calibrate.calibration import with_threshold
from ognet_video.clips.sink import ClipSettings
from ognet_video.config import apply_runtime_overrides
from ognet_video.errors import UserError
from ognet_video.models.detector import Detector
from ognet_video.paths import OutsideError
from ognet_video.runs import find_model, latest_run_dir, new_run_dir
from ognet_video.score.manifest import MANIFEST, RUN_INFO, ClipRecord, check_run_info, locked, model_id, read_manifest
from ognet_video.score.ray_engine import RayOptions, check_ray_options, import_ray, score_clips_ray
from ognet_video.score.run import CLIPS, ScoreOptions, ScoreResult, score_clips
from ognet_video.score.summary import SUMMARY, summary_table, write_summary
from ognet_video.sources.discover import ClipInput, clip_names, discover, fingerprint, run_name

__all__ = [
    "CLIPS", "MANIFEST", "RUN_INFO", "SUMMARY", "ClipInput", "ClipRecord", "RayOptions", "ScoreOptions", "ScoreResult",
    "clip_names", "discover", "fingerprint", "model_id", "read_manifest", "score", "summary_table", "write_summary",
]  # fmt: skip


def output_folder(inputs: list[str], project: Path, name: str | None, resume: bool) -> Path:
    """``project/NAME-N``: a new numbered folder, or with ``resume`` the newest one of that name."""
    name = name or run_name(inputs[0])
    if resume:
        try:
            return latest_run_dir(project, name, need=RUN_INFO)
        except OutsideError:
            raise
        except UserError:
            raise UserError(
                f"nothing to resume: no {project}/{name}-N holds a score run; run without --resume"
            ) from None
    return new_run_dir(project, name)


def score(inputs: list[str], model: str | Path | None = None, *, opts: ScoreOptions | None = None,
          out: Path | None = None, project: Path = Path("runs/score"), name: str | None = None, resume: bool = False,
          device: str = "auto", train_project: Path = Path("runs/train"), overrides: list[str] | None = None,
          threshold: float | None = None, engine: str = "local", ray_opts: RayOptions | None = None,
          console: Console | None = None) -> ScoreResult:  # fmt: skip
    """Discover, check, score and summarise. ``out`` names the folder itself (resumed when it is one);
    ``overrides``: ``score.event_frames=N`` / ``score.batch_frames=N``; ``threshold``: the operator's own;
    ``engine``: "local" (this process) or "ray" (one Ray task per clip, ``ray_opts``), same outputs."""
    console = console or Console()
    opts = opts or ScoreOptions()
    ray_opts = ray_opts or RayOptions()
    if engine not in ("local", "ray"):
        raise UserError(f"--engine must be local or ray (got {engine!r})")
    if engine == "ray":
        import_ray()
        check_ray_options(ray_opts)
    ClipSettings(opts.pre_roll, opts.post_roll).check()
    if opts.workers is not None and opts.workers < 1:
        raise UserError(f"--workers must be at least 1 (got {opts.workers})")
    if not 0 < opts.fps < math.inf:
        raise UserError(f"--fps must be a positive number (got {opts.fps})")
    warn = lambda msg: console.print(f"[yellow]{escape(msg)}[/]", highlight=False)  # noqa: E731
    clips = discover(inputs, opts.recursive, [out] if out is not None else [project], log=warn)
    model_path = find_model(model, train_project)
    n_video = sum(c.kind == "video" for c in clips)
    console.print(f"found {len(clips)} clips ({n_video} videos, {len(clips) - n_video} frame folders)")
    detector = Detector.load(model_path, device=device if engine == "local" else "cpu")  # ray: workers load theirs
    if detector.calibration is None:
        raise UserError(f"{model_path} has no calibration (training did not finish); score needs a finished run")
    apply_runtime_overrides(detector.cfg, overrides or [])
    detector.calibration = with_threshold(detector.calibration, threshold)
    if opts.workers is None and engine == "local":
        opts = dataclasses.replace(opts, workers=1 if detector.device.type == "cpu" else 2)
    mid = model_id(model_path)
    if out is None:
        out = output_folder(inputs, project, name, resume)
    elif out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; give a folder")
    elif out.is_dir() and not (out / RUN_INFO).is_file() and any(p.name != ".lock" for p in out.iterdir()):
        raise UserError(f"{out} holds other files and no {RUN_INFO}: it is not a score folder; use another")
    out.mkdir(parents=True, exist_ok=True)
    console.print(
        f"model {model_path} (sha256 {mid[:12]}) on {detector.device}, decode workers: {opts.workers} -> {out}"
        if engine == "local"
        else f"model {model_path} (sha256 {mid[:12]}), engine ray -> {out}"
    )
    with locked(out):
        info = {"model": str(model_path), "model_sha256": mid, "fps": opts.fps,
                "threshold": detector.calibration.threshold, "event_frames": detector.cfg.score.event_frames}  # fmt: skip
        check_run_info(out, info)
        if engine == "ray":
            return score_clips_ray(clips, detector, model_path, mid, out, opts, ray_opts, device, console)
        return score_clips(clips, detector, mid, out, opts, console)
