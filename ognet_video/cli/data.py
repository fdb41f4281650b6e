"""``ognet-video data download|verify``: get and check datasets (UCSD Ped1 and Ped2)."""

from __future__ import annotations

from pathlib import Path

import typer

from ognet_video.cli import common
from ognet_video.cli.common import examples, flag, model_opt, runtime_overrides, split_args  # noqa: F401
from ognet_video.errors import UserError  # noqa: F401


@common.data_app.command("download", epilog=examples("ognet-video data download ped2 --root data",
                                                     "ognet-video data download ped1 --root data"))  # fmt: skip
def data_download(
    dataset: str = typer.Argument("ped2", help="'ped2' or 'ped1' (UCSD Ped2 or Ped1: one tarball holds both)."),
    root: Path = typer.Option(Path("data"), "--root", help="Folder to download and extract into.", metavar="DIR"),
    url: str = typer.Option(
        None, "--url", help="Mirror of UCSD_Anomaly_Dataset.tar.gz (sha256 is still checked).", metavar="URL"
    ),  # fmt: skip
) -> None:
    """Download the official UCSD tarball (once: kept for the other subset), verify its sha256, extract UCSDped2/ or
    UCSDped1/ safely."""
    from ognet_video.data import ucsd_subset
    from ognet_video.data.ucsd import UCSD_URL, download_subset

    sub = ucsd_subset(dataset, "download")
    out = download_subset(sub, root, url or UCSD_URL)
    common.console.print(f"[green]{sub.title} ready[/] at {out}  (use: --data {out})")


@common.data_app.command("verify", epilog=examples("ognet-video data verify ped2 --data data/UCSDped2",
                                                   "ognet-video data verify ped1 --data data/UCSDped1 --quick"))  # fmt: skip
def data_verify(
    dataset: str = typer.Argument("ped2", help="'ped2' or 'ped1'."),
    data: Path = typer.Option(..., "--data", help="Dataset root (either layout).", metavar="DIR"),
    quick: bool = flag(False, "--quick", "Check layout and counts only; do not decode every frame."),
) -> None:
    """Check a Ped2 or Ped1 copy: layout, clip and frame counts, labels, every frame readable, MANIFEST.sha256 if
    present."""
    from rich.table import Table

    from ognet_video.data import ucsd_subset
    from ognet_video.data.ucsd import verify_subset

    sub = ucsd_subset(dataset, "verify")
    info = verify_subset(sub, data, read_frames=not quick)
    t = Table(title=f"{sub.title} at {data}: OK")
    t.add_column("check")
    t.add_column("value", justify="right")
    for k, v in info.items():
        t.add_row(k, str(v))
    common.console.print(t)
