"""UCSD Ped2: built-in frame labels, clip and frame count checks, loading, download and verify.

Clips are found by the generic reader (``dataset.py``) in either layout; the frame labels ship here
(from the dataset's ``UCSDped2.m``), and a labels.json found on disk must agree with them.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

import numpy as np

from ognet_video.data.dataset import Clip, Dataset, attach_labels, find_clips, read_labels_json
from ognet_video.errors import UserError
from ognet_video.sources.images import read_gray

PED2_URL = "http://www.svcl.ucsd.edu/projects/anomaly/UCSD_Anomaly_Dataset.tar.gz"
PED2_SHA256 = "2329af326951f5097fdd114c50e853957d3e569493a49d22fc082a9fd791915b"

TRAIN_FRAMES = [120, 150, 150, 180, 180, 150, 150, 120, 180, 180, 180, 180, 180, 150, 150, 150]
# clip -> (frames, first anomalous, last anomalous), 1-based inclusive, from the dataset's UCSDped2.m
TEST_GT = {
    "01": (180, 61, 180), "02": (180, 95, 180), "03": (150, 1, 146), "04": (180, 31, 180),
    "05": (150, 1, 129), "06": (180, 1, 159), "07": (180, 46, 180), "08": (180, 1, 180),
    "09": (120, 1, 120), "10": (150, 1, 150), "11": (180, 1, 180), "12": (180, 88, 180),
}  # fmt: skip


def ped2_labels() -> dict[str, np.ndarray]:
    """0-based per-frame labels (1 = anomalous) for the 12 test clips: 2010 frames, 1648 anomalous."""
    out = {}
    for clip, (n, a, b) in TEST_GT.items():
        lab = np.zeros(n, dtype=np.int64)
        lab[a - 1 : b] = 1
        out[clip] = lab
    return out


def check_ped2(root: Path, train: list[Clip], test: list[Clip]) -> None:
    """The clip and frame counts must be Ped2's; a wrong folder fails here, not mid-training."""
    want_train = {f"{i + 1:02d}": n for i, n in enumerate(TRAIN_FRAMES)}
    for split, clips, want in (("training", train, want_train), ("test", test, {k: v[0] for k, v in TEST_GT.items()})):
        got = {c.name: len(c) for c in clips}
        if set(got) != set(want):
            raise UserError(
                f"{root}: {split} clips {sorted(got)} are not Ped2's {sorted(want)}; point --data at the Ped2 root"
            )
        for name, n in want.items():
            if got[name] != n:
                raise UserError(f"{root}: {split} clip {name} has {got[name]} frames, Ped2 has {n}; re-download it")


def load_ped2(root: str | Path) -> Dataset:
    """Ped2 under ``root`` in either layout, its counts checked and its built-in labels attached."""
    root = Path(root).expanduser()
    layout, train, test = find_clips(
        root, ucsd_subset="UCSDped2", missing_hint=" (get it with: ognet-video data download ped2 --root DIR)"
    )
    disk_labels = read_labels_json(root, layout)
    check_ped2(root, train, test)
    labels = ped2_labels()
    if disk_labels is not None:
        for clip, lab in labels.items():
            if clip in disk_labels and list(disk_labels[clip]) != lab.tolist():
                raise UserError(f"{root}: labels.json disagrees with the UCSD ground truth for clip {clip}")
    attach_labels(root, test, labels)
    return Dataset("ped2", root, layout, train, test)


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


def download_ped2(root: str | Path, url: str = PED2_URL, sha256: str = PED2_SHA256) -> Path:
    """Download the official tarball, check its sha256, extract only UCSDped2/ safely. Returns its folder."""
    import urllib.request  # here, not at the top: loading a dataset needs neither these nor the progress bar

    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    final = root / "UCSDped2"
    if (final / "Train").is_dir() and (final / "Test").is_dir():
        return final
    archive = root / "UCSD_Anomaly_Dataset.tar.gz"
    if not archive.is_file() or sha256_file(archive) != sha256:
        part = archive.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with Progress(
                    "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()
                ) as prog:
                    task = prog.add_task("UCSD Ped2", total=total)
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
    tmp = root / ".extract-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in _safe_members(tar, tmp) if "UCSDped2/" in m.name + "/"]
            if not members:
                raise UserError(f"{archive} holds no UCSDped2/ folder; is it the UCSD anomaly tarball?")
            tar.extractall(tmp, members=members, filter="data")
    except tarfile.TarError as exc:
        raise UserError(f"{archive} is not a readable tar.gz ({exc}); delete it and download again") from None
    found = next(iter(sorted(tmp.rglob("UCSDped2"))), None)
    if found is None:
        raise UserError(f"{archive} holds no UCSDped2/ folder")
    found.replace(final)  # atomic: the folder appears only once fully extracted
    shutil.rmtree(tmp, ignore_errors=True)
    return final


def verify_ped2(root: str | Path, read_frames: bool = True) -> dict[str, int]:
    """Check layout, counts, labels and (optionally) that every frame decodes. Returns counts."""
    ds = load_ped2(root)
    n_frames = 0
    if read_frames:
        for clip in ds.train + ds.test:
            for f in clip.frames:
                img = read_gray(f)
                if img.shape != (240, 360):
                    raise UserError(f"{f}: frame is {img.shape[1]}x{img.shape[0]}, Ped2 frames are 360x240")
                n_frames += 1
    manifest = Path(root) / "MANIFEST.sha256"
    checked = 0
    if manifest.is_file():
        for n, line in enumerate(manifest.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or len(parts[0]) != 64:
                raise UserError(f"{manifest}: line {n} is not 'SHA256  PATH'; fix or delete the file")
            digest, rel = parts
            p = Path(root) / rel
            if not p.is_file() or sha256_file(p) != digest:
                raise UserError(f"{p}: missing or does not match MANIFEST.sha256; restore it")
            checked += 1
    return {
        "layout": ds.layout,  # type: ignore[dict-item]
        "train_clips": len(ds.train),
        "test_clips": len(ds.test),
        "frames_read": n_frames,
        "anomalous_frames": int(sum(int(c.labels.sum()) for c in ds.test if c.labels is not None)),
        "manifest_files_checked": checked,
    }
