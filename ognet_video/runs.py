"""Numbered run folders (runs/train/ped2-1, ped2-2, ...), as Ultralytics does."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from ognet_video.errors import UserError
from ognet_video.paths import check_inside, plain_name, safe_child

if TYPE_CHECKING:
    from ognet_video.models.detector import Detector


def _numbered(parent: Path, name: str) -> list[tuple[int, Path]]:
    if not parent.is_dir():
        return []
    pat = re.compile(rf"^{re.escape(name)}-(\d+)$")
    out = [(int(m.group(1)), p) for p in parent.iterdir() if p.is_dir() and (m := pat.match(p.name))]
    return sorted(out)


def new_run_dir(parent: Path, name: str) -> Path:
    """The next free ``parent/name-N``, created now so two runs never share it; a name that would leave
    ``parent`` (``../x``, an absolute path) is refused before anything is made."""
    plain_name(name, "run name (--name)")
    parent.mkdir(parents=True, exist_ok=True)
    n = (_numbered(parent, name)[-1][0] + 1) if _numbered(parent, name) else 1
    while True:
        p = safe_child(parent, f"{name}-{n}", "run name (--name)")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            n += 1


def latest_run_dir(parent: Path, name: str | None = None, need: str | None = None, confine: bool = True) -> Path:
    """The newest run folder (highest N), optionally named ``name-N`` and holding file ``need``. With
    ``confine`` (a run to resume: it is written to) one that is a symlink leading out of ``parent`` is refused."""
    if name is not None:
        plain_name(name, "run name (--name)")
    if not parent.is_dir():
        raise UserError(f"no runs in {parent}: train a model first (ognet-video train ped2 --data DIR)")
    pat = re.compile(rf"^{re.escape(name)}-(\d+)$" if name else r"^.+-(\d+)$")
    cands = [p for p in parent.iterdir() if p.is_dir() and pat.match(p.name)]
    if need:
        cands = [p for p in cands if (p / need).is_file()]
    if not cands:
        what = f" with {need}" if need else ""
        raise UserError(f"no run{what} in {parent}: train a model first (ognet-video train ped2 --data DIR)")
    best = max(cands, key=lambda p: (int(pat.match(p.name).group(1)), p.stat().st_mtime))  # type: ignore[union-attr]
    return check_inside(parent, best, "run folder") if confine else best


@contextlib.contextmanager
def run_lock(run_dir: Path, command: str) -> Iterator[None]:
    """One writer per run folder: ``train`` (``--resume`` included) and ``calibrate`` hold it while they write, so
    two of them never both log, checkpoint and save the same run. An OS lock: it dies with its process."""
    lock = FileLock(str(safe_child(run_dir, ".lock", "lock file")), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"another ognet-video command is writing to {run_dir} (a train or calibrate of this run); "
                        f"wait for it to finish, or {command} into a new run") from None  # fmt: skip
    try:
        yield
    finally:
        lock.release()


def find_model(model: str | Path | None, train_project: Path = Path("runs/train")) -> Path:
    """The checkpoint a command uses: ``model`` (a run folder, a .safetensors file or an exported .onnx model)
    or, when None, the newest run in ``train_project`` that holds a finished ``model.safetensors``."""
    from ognet_video.models.detector import resolve_model_path

    if model is not None:
        return resolve_model_path(model)
    try:
        return latest_run_dir(train_project, need="model.safetensors", confine=False) / "model.safetensors"
    except UserError:
        raise UserError(
            f"no trained model in {train_project} (no run folder with model.safetensors): pass --model RUN_DIR "
            "or train one first (ognet-video demo, or ognet-video train ped2 --data DIR)"
        ) from None


def load_model(model: str | Path | Detector | None, device: str = "auto",
               train_project: Path = Path("runs/train")) -> tuple[Detector, str]:  # fmt: skip
    """A finished (calibrated) model and how to name it: a Detector, a run folder, a checkpoint, an exported
    .onnx model (scored by OpenVINO or onnxruntime), or None for the newest finished run (``find_model``)."""
    from ognet_video.models.detector import Detector

    if isinstance(model, Detector):
        det, label = model, "(in memory)"
    else:
        path = find_model(model, train_project)
        det, label = Detector.load(path, device=device), str(path)
    if det.calibration is None:
        raise UserError(f"{label} has no calibration (saved before training finished); use a finished run's model")
    return det, label
