"""The UCSD anomaly dataset's subsets (Ped1, Ped2): loading, download and verify, shared by ``ped1.py`` and ``ped2.py``.

One official tarball holds both subsets, so one download path extracts either; a subset module supplies only
what differs (its built-in labels, its clip and frame count check, its frame size) as a ``Subset``.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ognet_video.data.dataset import Clip, Dataset, attach_labels, find_clips, read_labels_json
from ognet_video.errors import UserError
from ognet_video.sources.images import read_gray

UCSD_URL = "http://www.svcl.ucsd.edu/projects/anomaly/UCSD_Anomaly_Dataset.tar.gz"
UCSD_SHA256 = "2329af326951f5097fdd114c50e853957d3e569493a49d22fc082a9fd791915b"
ARCHIVE = "UCSD_Anomaly_Dataset.tar.gz"


@dataclass(frozen=True)
class Subset:
    """What one UCSD subset adds to the generic reader: names, frame size, labels and its count check."""

    name: str  # the dataset's name on the command line: "ped1"
    title: str  # in messages: "Ped1"
    folder: str  # its folder in the tarball and the UCSD layout: "UCSDped1"
    shape: tuple[int, int]  # frame height, width
    labels: Callable[[], dict[str, np.ndarray]]  # 0-based per-frame labels of every test clip
    check: Callable[[Path, list[Clip], list[Clip]], None]  # raises UserError for clips or counts not its own


def interval_labels(frames: int, intervals: Iterable[tuple[int, int]]) -> np.ndarray:
    """0-based labels (1 = anomalous) from UCSD's ``gt_frame`` intervals, which are 1-based and inclusive."""
    lab = np.zeros(frames, dtype=np.int64)
    for a, b in intervals:
        lab[a - 1 : b] = 1
    return lab


def load_subset(sub: Subset, root: str | Path) -> Dataset:
    """``sub`` under ``root`` in either layout, its counts checked and its built-in labels attached."""
    root = Path(root).expanduser()
    hint = f" (get it with: ognet-video data download {sub.name} --root DIR)"
    layout, train, test = find_clips(root, ucsd_subset=sub.folder, missing_hint=hint)
    disk_labels = read_labels_json(root, layout)
    sub.check(root, train, test)
    labels = sub.labels()
    for clip in test if disk_labels is not None else []:
        if clip.name in disk_labels and list(disk_labels[clip.name]) != labels[clip.name].tolist():
            raise UserError(f"{root}: labels.json disagrees with the UCSD ground truth for clip {clip.name}; "
                            "fix or delete labels.json")  # fmt: skip
    attach_labels(root, test, labels)
    return Dataset(sub.name, root, layout, train, test)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _safe_members(tar: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    dest = dest.resolve()
    members = []
    for m in tar.getmembers():
        target = (dest / m.name).resolve()
        if not target.is_relative_to(dest) or m.issym() or m.islnk() or m.isdev():
            raise UserError(f"archive member {m.name!r} would escape the target folder or is a link; refusing")
        members.append(m)
    return members


def _fetch(url: str, archive: Path, sha256: str) -> None:
    """Download ``url`` to ``archive`` through a ``.part`` file that becomes the archive only once its sha256 is right."""
    import urllib.request  # here, not at the top: loading a dataset needs neither these nor the progress bar

    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    part = archive.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()
            ) as prog:
                task = prog.add_task("UCSD anomaly dataset", total=total)
                while block := resp.read(1 << 20):
                    out.write(block)
                    prog.advance(task, len(block))
    except (OSError, ValueError) as exc:  # ValueError: not a URL at all
        part.unlink(missing_ok=True)
        raise UserError(f"download of {url} failed ({exc}); check the URL and the network") from None
    got = sha256_file(part)
    if got != sha256:
        part.unlink(missing_ok=True)
        raise UserError(f"downloaded file has sha256 {got}, expected {sha256}; not extracted, try again")
    part.replace(archive)


def download_subset(sub: Subset, root: str | Path, url: str = UCSD_URL, sha256: str = UCSD_SHA256) -> Path:
    """Download the official tarball (kept, so the other subset needs no second download), check its sha256,
    extract only ``sub``'s folder safely. Returns that folder."""
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    final = root / sub.folder
    if (final / "Train").is_dir() and (final / "Test").is_dir():
        return final
    archive = root / ARCHIVE
    if not archive.is_file() or sha256_file(archive) != sha256:
        _fetch(url, archive, sha256)
    tmp = root / f".extract-{sub.folder}"  # one per subset: both may be extracted at once
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in _safe_members(tar, tmp) if f"{sub.folder}/" in m.name + "/"]
            if not members:
                raise UserError(f"{archive} holds no {sub.folder}/ folder; is it the UCSD anomaly tarball?")
            tar.extractall(tmp, members=members, filter="data")
        found = next(iter(sorted(tmp.rglob(sub.folder))), None)
        if found is None:
            raise UserError(f"{archive} holds no {sub.folder}/ folder")
        found.replace(final)  # atomic: the folder appears only once fully extracted
    except tarfile.TarError as exc:
        raise UserError(f"{archive} is not a readable tar.gz ({exc}); delete it and download again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a refused or broken archive leaves no half-extracted folder
    return final


def check_manifest(root: Path) -> int:
    """Files checked against ``root/MANIFEST.sha256`` ('SHA256  PATH' lines); 0 when there is none."""
    manifest = root / "MANIFEST.sha256"
    checked = 0
    if manifest.is_file():
        for n, line in enumerate(manifest.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or len(parts[0]) != 64:
                raise UserError(f"{manifest}: line {n} is not 'SHA256  PATH'; fix or delete the file")
            digest, rel = parts
            p = root / rel
            if not p.is_file() or sha256_file(p) != digest:
                raise UserError(f"{p}: missing or does not match MANIFEST.sha256; restore it")
            checked += 1
    return checked


def verify_dataset(sub: Subset, ds: Dataset, root: str | Path, read_frames: bool = True) -> dict[str, int]:
    """Check a loaded ``sub``: (optionally) that every frame decodes at its size, and MANIFEST.sha256. Returns counts."""
    n_frames = 0
    h, w = sub.shape
    if read_frames:
        for clip in ds.train + ds.test:
            for f in clip.frames:
                img = read_gray(f)
                if img.shape != (h, w):
                    raise UserError(f"{f}: frame is {img.shape[1]}x{img.shape[0]}, {sub.title} frames are {w}x{h}; "
                                    "restore the original frames")  # fmt: skip
                n_frames += 1
    checked = check_manifest(Path(root).expanduser())
    return {
        "layout": ds.layout,  # type: ignore[dict-item]
        "train_clips": len(ds.train),
        "test_clips": len(ds.test),
        "frames_read": n_frames,
        "anomalous_frames": int(sum(int(c.labels.sum()) for c in ds.test if c.labels is not None)),
        "manifest_files_checked": checked,
    }


def verify_subset(sub: Subset, root: str | Path, read_frames: bool = True) -> dict[str, int]:
    """Check layout, counts, labels and (optionally) that every frame decodes. Returns counts."""
    return verify_dataset(sub, load_subset(sub, root), root, read_frames)
