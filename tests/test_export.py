"""ONNX export: the exported patch scorer matches torch, and watch / score / the API decide alike with it."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import extra_module, quiet_console

from ognet_video.errors import UserError
from ognet_video.models.detector import Detector
from ognet_video.patches import PatchExtractor
from ognet_video.sources import open_source

extra_module("onnxruntime")
onnx = extra_module("onnx")

# max |onnxruntime - torch| on patch logits: both run float32 on the CPU and differ only in summation order
# (onnxruntime fuses batch norm into the convolutions); measured 4e-8 on the tiny model
ATOL = 1e-5


@pytest.fixture(scope="module")
def onnx_path(trained_run, tmp_path_factory) -> Path:
    from ognet_video.models.export import export

    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    res = export(trained_run.run_dir, "onnx", out)
    assert res.path == out and out.is_file() and res.max_abs_diff <= ATOL
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no temp file left behind
    return out


def clip_patches(det: Detector, clip: Path) -> torch.Tensor:
    """Every cell of every frame of a clip (moving or not), as the model sees them."""
    ex = PatchExtractor(det.cfg.patches)
    frames = np.stack([ex.prepare(f.image) for f in open_source(clip)])
    cp = ex.extract(frames, None)
    return ex.select(cp, np.ones(cp.motion.shape, dtype=bool))


def test_onnx_scores_match_torch_on_real_and_random_patches(onnx_path, detector, walkway):
    exported = Detector.load(onnx_path)
    assert exported.backend is not None and not exported.members
    x = clip_patches(detector, walkway / "testing" / "frames" / "02")
    diffs = []
    for batch in (x, x[:1], x[:7], torch.rand(300, *x.shape[1:]) * 2 - 1):  # dynamic batch size
        got, want = exported.patch_scores(batch), detector.patch_scores(batch)
        assert got.shape == want.shape == (batch.shape[0],) and got.dtype == np.float32
        diffs.append(float(np.abs(got - want).max()))
    print(f"max |onnx - torch| = {max(diffs):.3g} over {x.shape[0]} real patches and 300 random ones")
    assert max(diffs) <= ATOL
    assert exported.patch_scores(x[:0]).shape == (0,)


def test_an_ensemble_exports_as_the_mean_of_its_members(detector, tmp_path):
    from ognet_video.models.export import check_batch, export_onnx
    from ognet_video.models.model import build_models

    torch.manual_seed(3)
    both = Detector(detector.cfg, detector.members + [build_models(detector.cfg)], detector.calibration)
    source = both.save(tmp_path / "model.safetensors")
    res = export_onnx(Detector.load(source), source, tmp_path / "ens.onnx")
    exported = Detector.load(res.path)
    assert res.members == 2 and exported.meta["export"]["members"] == 2
    x = check_batch(both, 64)
    assert np.abs(exported.patch_scores(x) - both.patch_scores(x)).max() <= ATOL


def test_metadata_is_the_checkpoints(onnx_path, detector, trained_run):
    from ognet_video.score.manifest import model_id

    exported = Detector.load(onnx_path, expect_preset=detector.cfg.model.preset)
    assert exported.cfg.to_dict() == detector.cfg.to_dict()
    assert exported.calibration == detector.calibration
    info = exported.meta["export"]
    assert info["source_sha256"] == model_id(trained_run.model_path) and info["members"] == len(detector.members)
    assert info["input"] == [1, detector.cfg.patches.size, detector.cfg.patches.size]
    with pytest.raises(UserError, match="expected 'paper'"):
        Detector.load(onnx_path, expect_preset="paper")
    with pytest.raises(UserError, match="no torch weights"):
        exported.save(onnx_path.with_suffix(".safetensors"))


def test_api_load_of_an_export_decides_like_the_checkpoint(onnx_path, trained_run, walkway):
    from ognet_video import load

    clip = walkway / "testing" / "frames" / "02"
    torch_res = list(load(trained_run.run_dir, device="cpu").stream(clip))
    model = load(onnx_path, device="cpu")
    onnx_res = list(model.stream(clip))
    assert [r.anomalous for r in onnx_res] == [r.anomalous for r in torch_res] and any(r.anomalous for r in onnx_res)
    assert [r.worst_box for r in onnx_res] == [r.worst_box for r in torch_res]
    assert np.allclose([r.raw for r in onnx_res], [r.raw for r in torch_res], atol=ATOL, equal_nan=True)
    frames = [f.image for f in open_source(clip)]
    assert [r.anomalous for r in model.score(frames)] == [r.anomalous for r in torch_res]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_cli_export_then_watch_gives_the_same_events(cli, main_cli, trained_run, walkway, tmp_path):
    out = tmp_path / "lobby-1.onnx"
    proc = cli("export", trained_run.run_dir, "--format", "onnx", "--out", out)  # a real subprocess, as a user runs it
    assert proc.returncode == 0 and out.is_file(), proc.stdout + proc.stderr
    assert "exported" in proc.stdout and "--model" in proc.stdout
    clip = walkway / "testing" / "frames" / "02"
    runs = {}
    for tag, model in (("torch", trained_run.run_dir), ("onnx", out)):
        r = main_cli("watch", clip, "score.event_frames=1", "--model", model, "--project", tmp_path / "watch",
                     "--name", tag, "--device", "cpu")  # fmt: skip
        assert r.returncode == 0, r.out
        runs[tag] = tmp_path / "watch" / f"{tag}-1"
    rows = {k: read_jsonl(d / "scores.jsonl") for k, d in runs.items()}
    assert [r["anomalous"] for r in rows["onnx"]] == [r["anomalous"] for r in rows["torch"]]
    assert [r["box"] for r in rows["onnx"]] == [r["box"] for r in rows["torch"]]
    events = {k: read_jsonl(d / "events.jsonl") for k, d in runs.items()}
    assert events["onnx"] and [(e["start"], e["end"]) for e in events["onnx"]] == [
        (e["start"], e["end"]) for e in events["torch"]
    ]


def test_score_with_an_export_gives_the_same_decisions(onnx_path, trained_run, walkway, tmp_path):
    from ognet_video.score import score

    clips = [str(walkway / "testing" / "frames")]
    flags = {}
    for tag, model in (("torch", trained_run.run_dir), ("onnx", onnx_path)):
        res = score(clips, model, out=tmp_path / tag, device="cpu", console=quiet_console())
        assert res.exit_code == 0 and res.scored == 2
        flags[tag] = {
            p.parent.name: [row["anomalous"] for row in csv.DictReader(p.open())]
            for p in sorted((tmp_path / tag / "clips").glob("*/scores.csv"))
        }
    assert flags["onnx"] == flags["torch"] and len(flags["onnx"]) == 2


def one_line_error(code: int, text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), text
    return lines[0]


def test_corrupt_or_foreign_onnx_is_one_line(cli, main_cli, onnx_path, walkway, tmp_path):
    clip = walkway / "testing" / "frames" / "01"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 not an onnx model at all" * 10)
    proc = cli("watch", clip, "--model", garbage)  # a real subprocess: onnxruntime's own logging stays quiet
    line = one_line_error(proc.returncode, proc.stdout + proc.stderr)
    assert "garbage.onnx" in line and "not a readable ONNX model" in line and "ognet-video export" in line
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(onnx_path.read_bytes()[: onnx_path.stat().st_size // 2])
    r = main_cli("score", clip, "--model", cut, "--project", tmp_path / "s")  # score says what it found first
    assert "cut.onnx" in one_line_error(r.returncode, r.out.split("\n", 1)[1])
    foreign = tmp_path / "foreign.onnx"  # valid ONNX without our metadata
    io = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in "xy"]
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", io[:1], io[1:])
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    r = main_cli("watch", clip, "--model", foreign)
    assert "not a model exported by ognet-video" in one_line_error(r.returncode, r.out)
    r = main_cli("export", onnx_path)
    assert "already an exported model" in one_line_error(r.returncode, r.out)
    r = main_cli("export", "--model", onnx_path.with_name("missing.onnx"))
    assert "model not found" in one_line_error(r.returncode, r.out)


def test_missing_onnxruntime_says_how_to_install(monkeypatch, onnx_path, trained_run, tmp_path):
    from ognet_video.models.export import export
    from ognet_video.models.onnx_backend import RUNTIME_ENV

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    monkeypatch.setenv(RUNTIME_ENV, "onnxruntime")
    with pytest.raises(UserError, match=r'pip install "ognet-video\[onnx\]"'):
        Detector.load(onnx_path)
    with pytest.raises(UserError, match=r'pip install "ognet-video\[onnx\]"'):
        export(trained_run.run_dir, "onnx", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(UserError, match="unknown export format"):
        export(trained_run.run_dir, "tflite", tmp_path / "x.tflite")


def test_openvino_and_onnxruntime_both_score_like_torch(onnx_path, detector, walkway, monkeypatch):
    extra_module("openvino")
    from ognet_video.models.onnx_backend import RUNTIME_ENV

    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    x = clip_patches(detector, walkway / "testing" / "frames" / "02")
    want = detector.patch_scores(x)
    assert Detector.load(onnx_path).meta["runtime"] == "openvino"  # the CPU default when it is installed
    for runtime in ("openvino", "onnxruntime"):
        det = Detector.load(onnx_path, runtime=runtime)
        assert det.meta["runtime"] == runtime
        for batch in (x, x[:1], x[:5], x):  # batch sizes change between calls; the output is not a reused buffer
            got = det.patch_scores(batch)
            assert got.shape == (len(batch),) and np.abs(got - want[: len(batch)]).max() <= ATOL
        first = det.patch_scores(x[:3])
        det.patch_scores(x[3:6])
        assert np.array_equal(first, det.patch_scores(x[:3]))
    monkeypatch.setenv(RUNTIME_ENV, "onnxruntime")
    assert Detector.load(onnx_path).meta["runtime"] == "onnxruntime"


def test_runtime_choice_without_openvino_and_bad_choices(onnx_path, monkeypatch):
    from ognet_video.models.onnx_backend import RUNTIME_ENV

    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "openvino", None)  # not installed: onnxruntime scores, nothing to say
    assert Detector.load(onnx_path).meta["runtime"] == "onnxruntime"
    with pytest.raises(UserError, match=r'pip install "ognet-video\[openvino\]"'):
        Detector.load(onnx_path, runtime="openvino")
    monkeypatch.setenv(RUNTIME_ENV, "tensorrt")
    with pytest.raises(UserError, match="unknown ONNX runtime 'tensorrt'.*OGNET_ONNX_RUNTIME"):
        Detector.load(onnx_path)
    with pytest.raises(UserError, match="OpenVINO runs exported models on the CPU"):
        Detector.load(onnx_path, device="cuda", runtime="openvino")
