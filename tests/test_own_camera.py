"""A user's own camera: training from recordings, the analysis rate, kept aspect ratio, ignore regions.

Tiny synthetic recordings (the walkway scene) written as 16:9 video files at 30 fps (each 10 fps frame three
times), trained with the tiny config. Ped2's own path (frame folders at 10 fps, 240x360) must give exactly
the patches and scores it gave before.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ognet_video.config import load_config
from ognet_video.data import load_dataset
from ognet_video.data.recordings import fit_geometry, load_recordings
from ognet_video.data.synthetic import _background, make_clip
from ognet_video.errors import UserError
from ognet_video.models.checkpoint import load_checkpoint
from ognet_video.models.detector import Calibration, Detector
from ognet_video.models.model import build_models
from ognet_video.models.stored_config import upgrade_checkpoint_config
from ognet_video.patches import PatchExtractor, fit_width, mask_cells
from ognet_video.sources import ImageFiles, VideoFile
from ognet_video.sources.resample import Resampler
from ognet_video.stream.engine import Engine, Sink, Stream
from ognet_video.stream.scoring import FrameScorer, misfit_warning
from ognet_video.training.train import collect_patches, load_clip_frames
from tests.conftest import TINY, extra_module

WIDTH, PAD = 426, 33  # 240x426: 16:9; the scene's 240x360 with black bars of 33 px left and right


def _frames(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return make_clip(rng, _background(np.random.default_rng(0)), n, None)[0]


def write_video(path: Path, frames: list[np.ndarray], fps: int = 30, repeat: int = 3, codec: str = "mp4v",
                pad: int = 0) -> Path:  # fmt: skip
    """10 fps frames as a 16:9 ``fps`` video, each frame ``repeat`` times: the scene widened to 16:9, or with
    ``pad`` px black bars left and right (a 4:3 or 3:2 camera in a 16:9 stream)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h = frames[0].shape[0]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (WIDTH, h))
    for f in frames:
        f = f if pad else cv2.resize(f, (WIDTH, h), interpolation=cv2.INTER_AREA)
        img = cv2.cvtColor(cv2.copyMakeBorder(f, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0), cv2.COLOR_GRAY2BGR)
        for _ in range(repeat):
            out.write(img)
    out.release()
    return path


@pytest.fixture(scope="module")
def cam(tmp_path_factory) -> Path:
    """Four 3 s recordings (30 analysed frames each at 10 fps) and one file that is not a video."""
    root = tmp_path_factory.mktemp("cam")
    for i in range(4):
        write_video(root / f"{i:02d}.mp4", _frames(i, 30))
    (root / "bad.mp4").write_bytes(b"not a video" * 100)
    return root


@pytest.fixture(scope="module")
def cam_run(cam, tmp_path_factory):
    """``train 'cam/*.mp4' --mask`` through the command line (the left third of the frame ignored)."""
    import subprocess

    from tests.conftest import run_cli

    mask = np.zeros((240, 426), np.uint8)
    mask[:, :142] = 255
    cv2.imwrite(str(cam.parent / "ignore.png"), mask)
    project = tmp_path_factory.mktemp("runs")
    res: subprocess.CompletedProcess = run_cli("train", f"{cam}/*.mp4", "--name", "cam", "--project", project,
                                               "--mask", cam.parent / "ignore.png", "train.holdout_fraction=0.2",
                                               *TINY)  # fmt: skip
    return res, project / "cam-1"


def test_resampler_keeps_the_frames_nearest_the_analysis_grid():
    keep = lambda r: [i for i in range(16) if r.keep_index(i)]  # noqa: E731
    assert keep(Resampler(10, 30)) == [0, 3, 6, 9, 12, 15]
    assert keep(Resampler(10, 25)) == [0, 3, 5, 8, 10, 13, 15]  # nearest to 0, 0.1, 0.2 s ... at 0.04 s a frame
    assert keep(Resampler(10, 10)) == list(range(16)) == keep(Resampler(10, 5)) == keep(Resampler(0, 30))
    by_time = Resampler(10, None)  # a live camera: its clock decides
    assert [i for i in range(16) if by_time.keep_time(i / 30)] == [0, 3, 6, 9, 12, 15]


def test_30fps_source_analysed_at_10fps_gives_the_patches_of_the_10fps_source(tmp_path):
    frames = _frames(7, 12)
    v30 = write_video(tmp_path / "a30.avi", frames, fps=30, repeat=3, codec="MJPG")  # intra-only: exact repeats
    v10 = write_video(tmp_path / "a10.avi", frames, fps=10, repeat=1, codec="MJPG")
    got30 = list(VideoFile(str(v30)).analyse_at(10))
    got10 = list(VideoFile(str(v10)).analyse_at(10))
    assert [f.index for f in got30] == [3 * i for i in range(12)] and len(got10) == 12
    assert [f.time for f in got30] == pytest.approx([f.time for f in got10])
    ex = PatchExtractor(load_config().patches)
    a = ex.extract(np.stack([ex.prepare(f.image) for f in got30]))
    b = ex.extract(np.stack([ex.prepare(f.image) for f in got10]))
    assert np.array_equal(a.motion, b.motion) and np.array_equal(a.flow, b.flow) and a.motion.max() > 2
    every = list(VideoFile(str(v30)))  # without the analysis rate: 3x as many frames, a third of the motion
    assert len(every) == 36


def test_aspect_ratio_is_kept_on_the_cell_grid():
    p = load_config().patches
    assert fit_width(p, (240, 360)) == 348 == p.width  # Ped2: the default geometry
    assert fit_width(p, (1080, 1920)) == 406 == fit_width(p, (240, 426))  # 16:9: 8 x 14 cells, not squeezed to 3:2
    assert fit_width(load_config(None, TINY).patches, (240, 426)) == 405


def test_holdout_is_the_last_part_in_time(cam):
    cfg = load_config(None, TINY)
    logged: list[str] = []
    recs = load_recordings([str(cam / "*.mp4")], cfg, log=logged.append)
    assert [r.name for r in recs.recordings] == ["00.mp4", "01.mp4", "02.mp4", "03.mp4"]
    assert len(logged) == 1 and logged[0].startswith("skipping bad.mp4:") and "\n" not in logged[0]
    assert [r.frames for r in recs.recordings] == [30] * 4 and recs.recordings[0].fps == 30
    (held,) = recs.holdout  # 15% of 12 s: the last 1.8 s of the last recording
    assert held.recording.name == "03.mp4" and (held.start, held.stop) == (12, 30)
    assert [(s.recording.name, s.start, s.stop) for s in recs.training][-1] == ("03.mp4", 0, 12)
    cfg.train.holdout_seconds = 4.0  # spans two recordings: the end of the third and all of the fourth
    recs = load_recordings([str(cam / f"{i:02d}.mp4") for i in range(4)], cfg)
    assert [(s.recording.name, s.start, s.stop) for s in recs.holdout] == [("02.mp4", 20, 30), ("03.mp4", 0, 30)]
    assert "held out for calibration: the last 4.0 s of 12.0 s" in recs.holdout_line()
    fit_geometry(cfg, recs)
    assert (cfg.patches.height, cfg.patches.width) == (225, 405)


def test_too_little_footage_is_one_line_before_training(cam, cli, tmp_path):
    res = cli("train", cam / "00.mp4", "--project", tmp_path, "train.holdout_seconds=2.95", *TINY)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "too little footage" in res.stderr and "Traceback" not in res.stdout + res.stderr
    assert not list(tmp_path.iterdir())  # no run folder left behind
    with pytest.raises(UserError, match="none of the 1 recording"):
        load_recordings([str(cam / "bad.mp4")], load_config(None, TINY))


def test_train_on_recordings_with_a_mask(cam_run, cam):
    res, run = cam_run
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Traceback" not in out and out.count("skipping bad.mp4") == 1
    assert "held out for calibration" in out and "frames 426x240 -> grid 405x225" in out
    assert not (run / "metrics.json").exists()  # no labels: no evaluation
    _, meta = load_checkpoint(run / "model.safetensors")
    assert meta["config"]["patches"]["analysis_fps"] == 10 and meta["config"]["patches"]["width"] == 405
    assert meta["holdout"]["by"] == "time" and meta["holdout"]["segments"][-1]["recording"].endswith("03.mp4")
    assert meta["holdout"]["segments"][-1]["end_s"] == 3.0 and meta["footage"]["skipped"][0].endswith("bad.mp4")
    ignored = meta["config"]["patches"]["ignore_cells"]
    assert ignored == [r * 9 + c for r in range(5) for c in range(3)]  # the left third: 3 of 9 columns
    # the label-free check ran on the held-out 2.4 s of video (decoded BGR, at the analysis rate) and was printed
    check = meta["validation"]
    assert check["windows"] == 1 and check["frames"] > 40 and all(k in check for k in ("all", "speedup", "densecrowd"))
    assert "label-free check on the held-out footage: AUC" in " ".join(out.split())


def test_masked_cells_are_neither_trained_on_nor_scored(cam_run, cam):
    _, run = cam_run
    det = Detector.load(run / "model.safetensors")
    ignored = np.array(det.cfg.patches.ignore_cells)
    ex = PatchExtractor(det.cfg.patches)
    assert ex.ignored[ignored].all() and ex.ignored.sum() == len(ignored)
    frames = [f.image for f in VideoFile(str(cam / "00.mp4")).analyse_at(10)]
    fs = FrameScorer(det).score_clip(frames)
    assert (fs.motion[:, ignored] > det.cfg.patches.motion_threshold).any()  # things move there ...
    assert np.isnan(fs.patch[:, ignored]).all() and np.isfinite(fs.patch).any()  # ... and are never scored
    clip = type("C", (), {"name": "c", "source": lambda self: VideoFile(str(cam / "00.mp4")).analyse_at(10),
                          "__len__": lambda self: 30})()  # fmt: skip
    cfg = det.cfg.model_copy(deep=True)
    cfg.train.batch_size = 2  # count every patch, however few
    with_mask = len(collect_patches([clip] * 4, cfg)[0])
    cfg.patches.ignore_cells = []
    assert len(collect_patches([clip] * 4, cfg)[0]) > with_mask  # the masked cells' patches are not trained on
    ex_all = PatchExtractor(cfg.patches)
    prepared = load_clip_frames(clip, ex_all)
    moving = ex_all.moving(ex_all.extract(prepared).motion)
    assert 4 * int(moving[:, ~ex.ignored].sum()) == with_mask


def test_score_and_watch_analyse_at_the_models_rate(cam_run, cam, cli, tmp_path):
    _, run = cam_run
    res = cli("score", cam / "00.mp4", cam / "01.mp4", "--model", run, "--project", tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = (tmp_path / "00-1" / "clips" / "00.mp4" / "scores.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [3 * i for i in range(30)]  # every 3rd frame of 90
    res = cli("watch", cam / "00.mp4", "--model", run, "--project", tmp_path / "w")
    assert res.returncode == 0 and "30 frames scored" in res.stdout, res.stdout + res.stderr
    summary = json.loads(next((tmp_path / "w").glob("*/summary.json")).read_text())
    assert summary["frames"] == 30


def test_mask_image_convention():
    p = load_config().patches
    mask = np.zeros((480, 720), np.uint8)
    mask[:240] = 255  # white = ignore: the top half
    assert mask_cells(p, mask) == list(range(48))
    polys = load_config(None, ["patches.ignore_polygons=[[[0,0],[1,0],[1,0.5],[0,0.5]]]"]).patches
    assert np.flatnonzero(PatchExtractor(polys).ignored).tolist() == list(range(48))
    with pytest.raises(UserError, match="ignore_cells"):
        load_config(None, ["patches.ignore_cells=[96]"])


def test_old_checkpoints_analyse_every_frame():
    old = {"patches": {"size": 29}, "train": {}}
    assert upgrade_checkpoint_config(old, "old.safetensors")["patches"]["analysis_fps"] == 0.0
    assert "analysis_fps" not in old["patches"]  # the stored dict is left alone


def test_misfit_warning():
    assert misfit_warning({"a.mp4": (0.3, 100), "b.mp4": (0.9, 10)}) is None  # b: too few frames to say
    line = misfit_warning({"a.mp4": (0.8, 100), "b.mp4": (0.3, 100)})
    assert line is not None and "a.mp4 (80%)" in line and "b.mp4" not in line and "\n" not in line


class _Collect(Sink):
    def __init__(self) -> None:
        self.raw: list[float] = []

    def write(self, batch) -> None:  # noqa: ANN001
        self.raw += [r.raw for r in batch.results]


def test_ped2_like_frames_give_exactly_the_old_patches_and_scores(walkway, walkway_ds):
    """Frame folders at 10 fps, 240x360, the default config: the recordings path and the engine's resampling
    change nothing, bit for bit (the grid is 232x348, every frame analysed)."""
    cfg = load_config(None, ["train.holdout_seconds=2"])
    folders = [str(walkway / "training" / "frames" / c.name) for c in walkway_ds.train]
    recs = load_recordings(folders, cfg, folder_fps=10.0)
    fit_geometry(cfg, recs)
    assert cfg.patches == load_config().patches
    seg, clip = recs.training[0], walkway_ds.train[0]
    assert (seg.start, seg.stop) == (0, len(clip))
    old = collect_patches([clip], load_config())
    new = collect_patches([seg], cfg)
    assert torch.equal(old[0], new[0]) and torch.equal(old[1], new[1])
    torch.manual_seed(0)
    det = Detector(cfg, [build_models(cfg)], Calibration(0.0, 0.0, 1.0, 1.0, 99.0, 10))
    before = FrameScorer(det).score_clip(f.image for f in clip.source()).raw  # what eval scores
    sink = _Collect()
    Engine(det).run([Stream("c", ImageFiles(folders[0], fps=10.0), [sink])])  # what watch and score score
    assert np.array_equal(before, np.array(sink.raw), equal_nan=True) and np.isfinite(before).sum() > 5
    ds = load_dataset("folder", walkway)
    assert [len(c) for c in ds.train] == [r.frames for r in recs.recordings]


def test_watch_and_score_warn_when_a_model_flags_most_frames(cam_run, cam, cli, tmp_path):
    import io

    from rich.console import Console

    from ognet_video.watch import watch

    _, run = cam_run
    det = Detector.load(run / "model.safetensors")
    det.calibration.threshold = -1e9  # flags every frame: a model that does not fit the camera
    out = io.StringIO()
    watch(str(cam / "00.mp4"), det, project=tmp_path / "w", console=Console(file=out, width=300))
    lines = [x for x in out.getvalue().splitlines() if "flags most frames" in x]
    assert len(lines) == 1 and "00.mp4 (100%)" in lines[0]
    res = cli("score", cam / "00.mp4", cam / "01.mp4", "--model", det.save(tmp_path / "m.safetensors"),
              "--project", tmp_path / "s")  # fmt: skip
    assert res.returncode == 0 and "flags most frames of 00.mp4 (100%), 01.mp4 (100%)" in res.stderr.replace("\n", " ")


def _folder(root: Path, frames: list[np.ndarray], pad: int) -> Path:
    root.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(root / f"{i:03d}.png"), cv2.copyMakeBorder(f, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0))
    return root


def test_black_bars_are_cropped_and_the_picture_analysed_as_without_them(tmp_path):
    """A 3:2 scene in a 16:9 stream (pillarbox): training finds the bars, and the model sees exactly the frames a
    camera without them gives; the drawn boxes and the ignore polygons stay in the stream's own coordinates."""
    frames = _frames(3, 30)
    barred = _folder(tmp_path / "barred", frames, PAD)
    plain = _folder(tmp_path / "plain", frames, 0)
    logged: list[str] = []
    hold = ["train.holdout_seconds=1"]  # 3 s of footage
    cfg, ref = load_config(None, hold), load_config(None, hold)
    fit_geometry(cfg, load_recordings([str(barred)], cfg), log=logged.append)
    fit_geometry(ref, load_recordings([str(plain)], ref))
    assert cfg.patches.crop == pytest.approx([PAD / WIDTH, 0, 1 - PAD / WIDTH, 1])
    assert ref.patches.crop == [0, 0, 1, 1] and (cfg.patches.width, ref.patches.width) == (348, 348)
    assert logged == ["black bars cropped: the picture is 360x240 at (33, 0) of 426x240 (patches.crop_bars=false "
                      "keeps them)"]  # fmt: skip
    a, b = PatchExtractor(cfg.patches), PatchExtractor(ref.patches)
    img = cv2.imread(str(barred / "000.png"))
    assert np.array_equal(a.prepare(img), b.prepare(frames[0]))
    assert np.array_equal(a.boxes_for(img.shape), b.boxes_for(frames[0].shape) + [PAD, 0, PAD, 0])
    left = [[[0, 0], [213 / 426, 0], [213 / 426, 1], [0, 1]]]  # the left half of the 16:9 stream
    cfg.patches.ignore_polygons = left
    cols = np.unique(np.flatnonzero(PatchExtractor(cfg.patches).ignored) % a.cols)
    assert cols.tolist() == list(range(6))  # half of the stream is 180 px of the 360 px picture: 6 of 12 columns
    kept = load_config(None, [*hold, "patches.crop_bars=false"])
    fit_geometry(kept, load_recordings([str(barred)], kept))
    assert kept.patches.crop == [0, 0, 1, 1] and kept.patches.width == 406


def test_bar_detection_leaves_scenes_without_bars_alone():
    from ognet_video.patches import black_bars, brightness_profile

    scene = _frames(5, 1)[0]
    assert black_bars(*brightness_profile(scene)) is None
    assert black_bars(*brightness_profile(np.full((240, 426), 10, np.uint8))) is None  # a dark scene, not bars
    letterbox = cv2.copyMakeBorder(scene, 30, 30, 0, 0, cv2.BORDER_CONSTANT, value=0)
    assert black_bars(*brightness_profile(letterbox)) == pytest.approx([0, 30 / 300, 1, 270 / 300])
    thin = cv2.copyMakeBorder(scene, 0, 0, 1, 1, cv2.BORDER_CONSTANT, value=0)  # 2 px of 362: a dark edge, kept
    assert black_bars(*brightness_profile(thin)) is None
    with pytest.raises(UserError, match="patches.crop"):
        load_config(None, ["patches.crop=[0.5,0,0.4,1]"])


def test_the_crop_travels_with_the_model(tmp_path):
    """``patches.crop`` is part of the model: a checkpoint and its ONNX export both score the cropped picture."""
    extra_module("onnxruntime")
    from ognet_video.models.export import export_onnx

    cfg = load_config(None, [*TINY, "patches.crop=[0.1,0,0.9,1]"])
    torch.manual_seed(0)
    det = Detector(cfg, [build_models(cfg)], Calibration(0.0, 0.0, 1.0, 1.0, 99.0, 10))
    src = det.save(tmp_path / "m.safetensors")
    export_onnx(Detector.load(src), src, tmp_path / "m.onnx")
    for path in (src, tmp_path / "m.onnx"):
        assert Detector.load(path).cfg.patches.crop == [0.1, 0.0, 0.9, 1.0]
