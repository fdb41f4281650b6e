"""``ognet-video data download|verify``: get and check datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from ognet_video.cli import common
from ognet_video.cli.common import examples, flag, model_opt, runtime_overrides, split_args  # noqa: F401
from ognet_video.errors import UserError  # noqa: F401


@common.data_app.command("download", epilog=examples("ognet-video data download ped2 --root data"))
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
    common.console.print(f"[green]Ped2 ready[/] at {out}  (use: --data {out})")


@common.data_app.command("verify", epilog=examples("ognet-video data verify ped2 --data data/UCSDped2"))
def data_verify(
    dataset: str = typer.Argument("ped2"),
    data: Path = typer.Option(..., "--data", help="Dataset root (either layout).", metavar="DIR"),
    quick: bool = flag(False, "--quick", "Check layout and counts only; do not decode every frame."),
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
    common.console.print(t)
