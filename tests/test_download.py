from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ognet_video.data.ped1 import PED1
from ognet_video.data.ped2 import download_ped2, sha256_file
from ognet_video.data.ucsd import download_subset
from ognet_video.errors import UserError

TOP = "UCSD_Anomaly_Dataset.v1p2"
GOOD_FILES = {
    f"{TOP}/UCSDped2/Train/Train001/001.tif": b"train frame 1",
    f"{TOP}/UCSDped2/Train/Train001/002.tif": b"train frame 2",
    f"{TOP}/UCSDped2/Test/Test001/001.tif": b"test frame 1",
    f"{TOP}/UCSDped2/Test/Test001_gt/001.bmp": b"mask 1",
    f"{TOP}/UCSDped1/Train/Train001/001.tif": b"ped1 frame: not extracted for ped2",
    f"{TOP}/README.txt": b"readme",
}


def make_tarball(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_download_checks_sha_and_extracts_only_ped2(tmp_path):
    src = make_tarball(tmp_path / "mirror.tar.gz", GOOD_FILES)
    root = tmp_path / "data"
    out = download_ped2(root, url=src.as_uri(), sha256=sha256_file(src))
    assert out == root / "UCSDped2"
    for name, data in GOOD_FILES.items():
        if "/UCSDped2/" in name:
            assert (root / name.split(f"{TOP}/", 1)[1]).read_bytes() == data
    assert not list(root.rglob("UCSDped1")), "only UCSDped2/ may be extracted"
    assert not list(root.rglob("README.txt"))
    # the verified archive is kept, no partial download or extraction folder is left behind
    assert leftovers(root) == sorted(["UCSDped2", "UCSD_Anomaly_Dataset.tar.gz"])
    assert sha256_file(root / "UCSD_Anomaly_Dataset.tar.gz") == sha256_file(src)


def test_ped1_comes_from_the_same_tarball_and_ped2_then_needs_no_download(tmp_path):
    src = make_tarball(tmp_path / "mirror.tar.gz", GOOD_FILES)
    root = tmp_path / "data"
    out = download_subset(PED1, root, url=src.as_uri(), sha256=sha256_file(src))
    assert out == root / "UCSDped1"
    assert (out / "Train" / "Train001" / "001.tif").read_bytes() == b"ped1 frame: not extracted for ped2"
    assert leftovers(root) == sorted(["UCSDped1", "UCSD_Anomaly_Dataset.tar.gz"])  # only Ped1, archive kept
    # the kept archive serves Ped2: this URL does not exist
    download_ped2(root, url=(tmp_path / "gone.tar.gz").as_uri(), sha256=sha256_file(src))
    assert leftovers(root) == sorted(["UCSDped1", "UCSDped2", "UCSD_Anomaly_Dataset.tar.gz"])
    assert (root / "UCSDped2" / "Test" / "Test001" / "001.tif").read_bytes() == b"test frame 1"


def test_ped1_extract_has_the_same_safety_checks(tmp_path):
    src = make_tarball(tmp_path / "evil.tar.gz", {**GOOD_FILES, f"{TOP}/UCSDped1/../../../evil": b"pwned"})
    with pytest.raises(UserError, match="escape"):
        download_subset(PED1, tmp_path / "data", url=src.as_uri(), sha256=sha256_file(src))
    assert leftovers(tmp_path / "data") == ["UCSD_Anomaly_Dataset.tar.gz"]  # nothing extracted, no evil file
    only2 = make_tarball(tmp_path / "only2.tar.gz", {f"{TOP}/UCSDped2/Train/Train001/001.tif": b"x"})
    with pytest.raises(UserError, match="UCSDped1"):
        download_subset(PED1, tmp_path / "d2", url=only2.as_uri(), sha256=sha256_file(only2))
    assert leftovers(tmp_path / "d2") == ["UCSD_Anomaly_Dataset.tar.gz"]


def test_download_is_idempotent(tmp_path):
    src = make_tarball(tmp_path / "mirror.tar.gz", GOOD_FILES)
    root = tmp_path / "data"
    download_ped2(root, url=src.as_uri(), sha256=sha256_file(src))
    # already extracted: must not touch the network (this URL does not exist)
    out = download_ped2(root, url=(tmp_path / "gone.tar.gz").as_uri(), sha256="0" * 64)
    assert out == root / "UCSDped2"


def test_local_archive_with_right_sha_is_not_downloaded_again(tmp_path):
    src = make_tarball(tmp_path / "mirror.tar.gz", GOOD_FILES)
    root = tmp_path / "data"
    root.mkdir()
    (root / "UCSD_Anomaly_Dataset.tar.gz").write_bytes(src.read_bytes())
    out = download_ped2(root, url=(tmp_path / "gone.tar.gz").as_uri(), sha256=sha256_file(src))
    assert (out / "Test" / "Test001" / "001.tif").read_bytes() == b"test frame 1"


def test_wrong_sha256_extracts_nothing(tmp_path):
    src = make_tarball(tmp_path / "mirror.tar.gz", GOOD_FILES)
    root = tmp_path / "data"
    with pytest.raises(UserError, match="sha256"):
        download_ped2(root, url=src.as_uri(), sha256="0" * 64)
    assert leftovers(root) == []


def test_unreachable_url_is_user_error(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(UserError, match="download"):
        download_ped2(root, url=(tmp_path / "missing.tar.gz").as_uri(), sha256="0" * 64)
    assert leftovers(root) == []


@pytest.mark.parametrize(
    "evil",
    ["../evil", f"{TOP}/UCSDped2/../../../evil", "/tmp/ognet-video-test-evil-absolute"],
)
def test_member_escaping_the_folder_is_refused(tmp_path, evil):
    files = {**GOOD_FILES, evil: b"pwned"}
    src = make_tarball(tmp_path / "mirror.tar.gz", files)
    root = tmp_path / "data"
    with pytest.raises(UserError, match="escape"):
        download_ped2(root, url=src.as_uri(), sha256=sha256_file(src))
    assert not (tmp_path / "evil").exists()
    assert not (root / "evil").exists()
    assert not Path("/tmp/ognet-video-test-evil-absolute").exists()
    assert not (root / "UCSDped2").exists()


def test_symlink_member_is_refused(tmp_path):
    src = make_tarball(tmp_path / "mirror.tar.gz", GOOD_FILES, links={f"{TOP}/UCSDped2/Train/link": "/etc/passwd"})
    root = tmp_path / "data"
    with pytest.raises(UserError, match="link"):
        download_ped2(root, url=src.as_uri(), sha256=sha256_file(src))
    assert not (root / "UCSDped2").exists()


def test_tarball_without_ped2_is_user_error(tmp_path):
    src = make_tarball(tmp_path / "mirror.tar.gz", {f"{TOP}/UCSDped1/Train/Train001/001.tif": b"x"})
    root = tmp_path / "data"
    with pytest.raises(UserError, match="UCSDped2"):
        download_ped2(root, url=src.as_uri(), sha256=sha256_file(src))
    assert not (root / "UCSDped2").exists()


def test_not_a_tarball_is_user_error(tmp_path):
    src = tmp_path / "mirror.tar.gz"
    src.write_bytes(b"<html>404 not found</html>")
    root = tmp_path / "data"
    with pytest.raises(UserError, match="tar"):
        download_ped2(root, url=src.as_uri(), sha256=sha256_file(src))
    assert not (root / "UCSDped2").exists()
