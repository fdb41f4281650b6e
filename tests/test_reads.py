"""Issue 39 (Reliability II), reading inputs: only regular files are opened (a FIFO never hangs a run), a cut-off
or variable-rate video is read by what it holds, and the smaller one-line reports (items 3, 4, 5 and 10)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import quiet_console

from ognet_video import score as score_pkg
from ognet_video.score import discover
from ognet_video.sources import image_files, read_gray


def _calibrate_run(trained_run, tmp_path) -> Path:
    run = tmp_path / "tiny-1"
    run.mkdir()
    shutil.copy2(trained_run.model_path, run / "model.safetensors")
    return run


# ---------------------------------------------------------------- item 5: only regular files are read


def test_a_fifo_frame_fails_its_clip_in_one_line_and_never_hangs(cli, trained_run, walkway, tmp_path):
    import csv
    import os

    clip = tmp_path / "in" / "fifo-clip"
    shutil.copytree(walkway / "testing" / "frames" / "01", clip)
    (clip / "005.jpg").unlink()
    os.mkfifo(clip / "005.jpg")  # nothing ever writes to it: opening it for reading would block forever
    shutil.copytree(walkway / "testing" / "frames" / "02", tmp_path / "in" / "good")
    proc = cli("score", tmp_path / "in", "--model", trained_run.run_dir, "--project", tmp_path / "runs", timeout=90)
    assert proc.returncode == 11, proc.stdout + proc.stderr  # 10 + the one clip not scored; the other is scored
    rows = {r["clip"]: r for r in csv.DictReader((tmp_path / "runs" / "in-1" / "summary.csv").open())}
    assert rows["good"]["status"] == "done" and rows["fifo-clip"]["status"] == "failed"
    assert "FIFO" in rows["fifo-clip"]["reason"] and "005.jpg" in rows["fifo-clip"]["reason"]


def test_a_fifo_or_device_given_as_input_is_named_as_such(main_cli, trained_run, tmp_path):
    import os

    fifo = tmp_path / "cam.mp4"
    os.mkfifo(fifo)
    for cmd in ("score", "watch", "train"):
        for src, what in ((fifo, "a FIFO (named pipe)"), ("/dev/zero", "a character device")):
            args = (cmd, src) if cmd == "train" else (cmd, src, "--model", trained_run.run_dir)
            proc = main_cli(*args, "--project", tmp_path / "runs")
            assert proc.returncode == 2 and f"is {what}" in proc.stderr, (cmd, src, proc.out)
            assert "does not exist" not in proc.out
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- item 10: smaller points


def test_an_all_digit_source_is_a_path_when_one_exists_and_a_huge_index_is_refused(main_cli, trained_run, walkway,
                                                                                   tmp_path, monkeypatch):  # fmt: skip
    from ognet_video.sources.base import source_kind

    monkeypatch.chdir(walkway / "testing" / "frames")
    assert source_kind("01") == "folder"  # the clip here, not webcam 1
    monkeypatch.chdir(tmp_path)
    assert source_kind("01") == "webcam"
    proc = main_cli("watch", "2147483648", "--model", trained_run.run_dir, "--project", tmp_path / "runs")
    assert proc.returncode == 2 and "webcam index 2147483648 is out of range" in proc.stderr, proc.out
    assert "Traceback" not in proc.out


def test_scored_counts_the_clips_finished_not_the_clips_started(trained_run, walkway, tmp_path):
    shutil.copytree(walkway / "testing" / "frames" / "01", tmp_path / "in" / "good")
    bad = tmp_path / "in" / "bad"
    shutil.copytree(walkway / "testing" / "frames" / "02", bad)
    for f in bad.iterdir():  # no frame readable (one bad frame is skipped, not the clip)
        f.write_bytes(b"not a jpeg")
    res = score_pkg.score([str(tmp_path / "in")], trained_run.run_dir, out=tmp_path / "out", console=quiet_console())
    assert (res.scored, len(res.failed), res.exit_code) == (1, 1, 11)


def test_calibrate_leaves_out_an_unreadable_clip_as_train_does(main_cli, trained_run, walkway, tmp_path):
    run = _calibrate_run(trained_run, tmp_path)
    (tmp_path / "bad.mp4").write_bytes(b"junk, not a video")
    clips = [walkway / "training" / "frames" / n for n in ("01", "02")]
    proc = main_cli("calibrate", "--model", run, *clips, tmp_path / "bad.mp4", "--alarms-per-hour", "5",
                    "--device", "cpu")  # fmt: skip
    assert proc.returncode == 0, proc.out
    assert "skipping bad.mp4" in proc.stderr and "calibrated on 2 clips" in proc.stdout
    from ognet_video.models.detector import Detector

    assert Detector.load(run / "model.safetensors").meta["calibration_footage"]["clips"] == ["01", "02"]


def test_a_newer_checkpoint_format_says_upgrade(trained_run, tmp_path):
    import pytest

    from ognet_video.errors import UserError
    from ognet_video.models.checkpoint import load_checkpoint

    tensors, meta = load_checkpoint(trained_run.model_path)
    from safetensors.torch import save_file

    path = tmp_path / "future.safetensors"
    save_file(tensors, str(path), metadata={"format": "ognet-video/2", "meta": json.dumps(meta)})
    with pytest.raises(UserError, match="newer ognet-video .*upgrade"):
        load_checkpoint(path)
    save_file(tensors, str(path), metadata={"format": "someone-else/3", "meta": "{}"})
    with pytest.raises(UserError, match="not an ognet-video checkpoint"):
        load_checkpoint(path)


def test_yaml_errors_give_their_line(tmp_path):
    import pytest

    from ognet_video.cameras import read_cameras
    from ognet_video.config import load_config
    from ognet_video.errors import UserError

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n  seed: [1, 2\nscore:\n  topk: 1\n")
    for load in (lambda: load_config(bad, []), lambda: read_cameras(bad)):
        with pytest.raises(UserError, match=r"line \d+, column \d+") as err:
            load()
        assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_files_of_unknown_types_are_named_not_silently_skipped(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "b.dav").write_bytes(b"x")  # a DVR container OpenCV may not know by name
    (tmp_path / "notes.txt").write_text("x")
    heard: list[str] = []
    assert [c.path.name for c in discover([str(tmp_path)], log=heard.append)] == ["a.mp4"]
    assert len(heard) == 1 and "left out 2 file(s)" in heard[0] and ".dav" in heard[0] and ".txt" in heard[0]


# ---------------------------------------------------------------- item 4: a cut-off recording in train


def _mkv(path: Path, frames: list[Path], cut: float = 1.0) -> Path:
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (360, 240))
    assert vw.isOpened()
    for f in frames:
        vw.write(cv2.cvtColor(read_gray(f), cv2.COLOR_GRAY2BGR))
    vw.release()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    return path


def test_train_on_a_cut_off_last_recording_uses_what_decodes(main_cli, walkway, tmp_path):
    from conftest import TINY

    from ognet_video.config import load_config
    from ognet_video.data.recordings import load_recordings

    tr = walkway / "training" / "frames"
    rec = tmp_path / "rec"
    rec.mkdir()
    for i, clip in enumerate(("01", "02"), 1):
        _mkv(rec / f"cam{i}.mkv", image_files(tr / clip) + image_files(tr / "03"))
    _mkv(rec / "cam3.mkv", image_files(tr / "03") * 3, cut=0.5)  # states 6 s, decodes about half of it
    heard: list[str] = []
    recs = load_recordings([str(rec)], load_config(None, [*TINY, "train.holdout_seconds=1.5"]), log=heard.append)
    last = recs.recordings[-1]
    assert last.name == "cam3.mkv" and 10 <= last.frames < 50, last.frames
    assert any("cam3.mkv" in h and "cut off" in h for h in heard), heard
    proc = main_cli("train", rec, "--project", tmp_path / "runs", *TINY, "train.holdout_seconds=1.5")
    assert "Traceback" not in proc.out and "need at least one array" not in proc.out
    assert proc.returncode == 0, proc.out


# ---------------------------------------------------------------- item 3: variable frame rate


class _VfrCapture:
    """States 10 fps; frames 0-29 are 0.1 s apart, frames 30-59 0.02 s apart (50 fps), as the issue's MKV."""

    def __init__(self) -> None:
        self.i = -1
        self.stamps = [k * 0.1 for k in range(30)] + [3.0 + k * 0.02 for k in range(30)]

    def _next(self) -> bool:
        self.i += 1
        return self.i < len(self.stamps)

    def read(self):
        return (True, np.full((24, 32, 3), self.i, np.uint8)) if self._next() else (False, None)

    def grab(self) -> bool:
        return self._next()

    def get(self, prop: int) -> float:
        import cv2

        if prop == cv2.CAP_PROP_FPS:
            return 10.0
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return 60.0
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self.stamps[self.i] * 1000.0
        return 0.0

    def release(self) -> None:
        pass


def test_a_variable_rate_video_is_timed_and_thinned_by_its_timestamps(tmp_path):
    from ognet_video.sources import VideoFile

    frames = list(VideoFile("vfr.mkv", opener=lambda spec: _VfrCapture()).analyse_at(10.0).frames())
    times = [f.time for f in frames]
    assert times[-1] == pytest.approx(3.5, abs=0.03)  # not 5.9 s (60 frames / 10 fps)
    assert np.all(np.diff(times) > 0.09)  # the 50 fps part thinned to 10 fps on the same grid
    assert len(frames) == 30 + 6  # 0.0-2.9 s, then 3.0, 3.1, ..., 3.5 s
    assert [f.index for f in frames[30:32]] == [30, 35]


def test_train_plans_a_variable_rate_video_by_its_timestamps(walkway, tmp_path, monkeypatch):
    """The held-out part is the last seconds by the frames' timestamps, not by the stated rate and length."""
    from conftest import TINY

    from ognet_video.config import load_config
    from ognet_video.data.recordings import load_recordings
    from ognet_video.sources import files as files_mod

    tr = walkway / "training" / "frames"
    rec = tmp_path / "rec"
    rec.mkdir()
    _mkv(rec / "cam1.mkv", image_files(tr / "01") + image_files(tr / "02") + image_files(tr / "03"))  # 6 s, 10 fps
    _mkv(rec / "cam2.mkv", image_files(tr / "01") * 3)  # states 60 frames at 10 fps; decodes as _VfrCapture
    real = files_mod.open_capture
    monkeypatch.setattr(files_mod, "open_capture", lambda spec: _VfrCapture() if "cam2" in spec else real(spec))
    recs = load_recordings([str(rec)], load_config(None, [*TINY, "train.holdout_seconds=1.5"]))
    cam1, cam2 = recs.recordings
    assert (cam1.frames, cam1.seconds) == (60, pytest.approx(6.0))
    assert cam2.frames == 36 and cam2.seconds == pytest.approx(3.6)  # 0-2.9 s, then 3.0-3.5 s thinned to 10 fps
    assert {s.recording.name for s in recs.holdout} == {"cam2.mkv"}
    assert recs.holdout[0].start_s == pytest.approx(2.1) and recs.holdout[-1].end_s == pytest.approx(3.6)
    assert recs.holdout_seconds == pytest.approx(1.5)
    held = [f.time for s in recs.holdout for f in s.source()]
    assert len(held) == sum(len(s) for s in recs.holdout) == 15 and held[0] == pytest.approx(2.1)
    assert [f.time for f in recs.training[-1].source()][-1] == pytest.approx(2.0)  # training ends where it begins


def test_a_constant_rate_video_keeps_index_times(walkway, tmp_path):
    import cv2

    from ognet_video.sources import VideoFile

    path = tmp_path / "c.mkv"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (360, 240))
    for f in image_files(walkway / "training" / "frames" / "01"):
        vw.write(cv2.cvtColor(read_gray(f), cv2.COLOR_GRAY2BGR))
    vw.release()
    src = VideoFile(str(path)).analyse_at(10.0)
    frames = list(src.frames())
    assert not src.variable and [f.index for f in frames] == list(range(0, 20, 3))
    assert [f.time for f in frames] == [i / 30.0 for i in range(0, 20, 3)]


# ---------------------------------------------------------------- item 10: one unreadable frame is skipped, not the clip


def _broken_clip(walkway, dst: Path, bad: tuple[int, ...]) -> Path:
    shutil.copytree(walkway / "testing" / "frames" / "01", dst)
    for i in bad:
        sorted(dst.iterdir())[i].write_bytes(b"not a jpeg")
    return dst


def test_an_unreadable_frame_is_skipped_and_motion_restarts_after_it(walkway, tmp_path):
    from ognet_video.sources import Reader, open_source

    clip = _broken_clip(walkway, tmp_path / "c", (1, 7))
    heard: list[str] = []
    with Reader(open_source(str(clip), log=heard.append)) as reader:
        frames = list(reader)
    want = [0, *range(2, 7), *range(8, 20)]
    assert [f.index for f in frames] == want
    assert [f.step for f in frames] == want  # the steps count the missing intervals, as after a reconnect
    assert [f.index for f in frames if f.prev is None] == [0, 2, 8]  # no motion measured across a gap
    assert len({f.link for f in frames}) == 3 and reader.source.skipped == 2
    assert len(heard) == 2 and "001.jpg" in heard[0] and "007.jpg" in heard[1], heard


def test_score_keeps_a_clip_with_an_unreadable_frame(walkway, trained_run, tmp_path):
    import csv
    import io

    from rich.console import Console

    inp = tmp_path / "in"
    _broken_clip(walkway, inp / "broken", (7,))
    shutil.copytree(walkway / "testing" / "frames" / "01", inp / "intact")
    out = io.StringIO()
    res = score_pkg.score([str(inp)], trained_run.run_dir, out=tmp_path / "out", console=Console(file=out, width=300))
    assert res.exit_code == 0 and res.scored == 2, out.getvalue()
    rec = {r.name: r for r in res.records}["broken"]
    assert (rec.status, rec.frames, rec.skipped) == ("done", 19, 1) and "007.jpg" in rec.reason
    assert [line for line in out.getvalue().splitlines() if "007.jpg" in line and "skip" in line], out.getvalue()

    def rows(name: str) -> dict[int, dict]:
        path = tmp_path / "out" / "clips" / name / "scores.csv"
        return {int(r["frame"]): r for r in csv.DictReader(path.open())}

    broken, intact = rows("broken"), rows("intact")
    assert sorted(broken) == [i for i in range(20) if i != 7]
    assert broken[8]["raw"] == ""  # the first frame after the gap has nothing to measure motion from
    for i in (*range(7), *range(9, 20)):  # every other frame keeps its own score
        assert broken[i]["raw"] == intact[i]["raw"], i
    summary = {r["clip"]: r for r in csv.DictReader((tmp_path / "out" / "summary.csv").open())}
    assert summary["broken"]["status"] == "done" and "007.jpg" in summary["broken"]["reason"]


def test_a_clip_with_no_readable_frame_still_fails_in_one_line(walkway, trained_run, tmp_path):
    import io

    from rich.console import Console

    clip = _broken_clip(walkway, tmp_path / "in" / "dead", tuple(range(20)))
    out = io.StringIO()
    res = score_pkg.score([str(clip)], trained_run.run_dir, out=tmp_path / "out", console=Console(file=out, width=300))
    assert res.exit_code == 11 and res.records[0].status == "failed"
    reason = res.records[0].reason
    assert "\n" not in reason and "no frame" in reason and "000.jpg" in reason, reason
    assert "skip" not in out.getvalue(), out.getvalue()  # no line per frame: the one failure line says it


class _BadReadCapture:
    """A 12-frame, 10 fps video whose frame 5 fails to decode (``fail``: a False read or a cv2.error)."""

    def __init__(self, fail: str, bad: tuple[int, ...] = (5,)) -> None:
        self.i, self.fail, self.bad = -1, fail, bad

    def _next(self) -> bool:
        self.i += 1
        if self.i in self.bad:
            if self.fail == "raise":
                import cv2

                raise cv2.error("decoder: illegal dc vlc")
            return False
        return self.i < 12

    def read(self):
        return (True, np.full((24, 32, 3), self.i, np.uint8)) if self._next() else (False, None)

    def grab(self) -> bool:
        return self._next()

    def get(self, prop: int) -> float:
        import cv2

        return {cv2.CAP_PROP_FPS: 10.0, cv2.CAP_PROP_FRAME_COUNT: 12.0,
                cv2.CAP_PROP_POS_MSEC: 100.0 * self.i}.get(prop, 0.0)  # fmt: skip

    def release(self) -> None:
        pass


@pytest.mark.parametrize("fail", ["false", "raise"])
def test_a_frame_that_fails_to_decode_mid_video_is_skipped(fail):
    from ognet_video.sources import Reader, VideoFile

    heard: list[str] = []
    src = VideoFile("cam.mp4", opener=lambda spec: _BadReadCapture(fail))
    src.log = heard.append
    with Reader(src) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert [f.step for f in frames] == [f.index for f in frames] and frames[5].prev is None
    assert [f.time for f in frames][5] == pytest.approx(0.6) and src.skipped == 1
    assert len(heard) == 1 and "frame 5" in heard[0] and "cam.mp4" in heard[0], heard


def test_a_video_that_stops_decoding_ends_there_without_skips():
    from ognet_video.sources import VideoFile

    heard: list[str] = []
    src = VideoFile("cut.mp4", opener=lambda spec: _BadReadCapture("false", bad=tuple(range(5, 40))))
    src.log = heard.append
    assert [f.index for f in src.frames()] == [0, 1, 2, 3, 4] and src.skipped == 0 and heard == []
