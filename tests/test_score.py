"""``ognet-video score``: discovery, equality with eval's scores, resume after a kill, failures, videos."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import quiet_console
from videos import decode, write_mp4

from ognet_video import score as score_pkg
from ognet_video.cli import common as cli_common
from ognet_video.data import read_gray
from ognet_video.decide import calibrated, causal_smooth
from ognet_video.errors import UserError
from ognet_video.score import ClipInput, ClipRecord, ScoreOptions, clip_names, discover, read_manifest
from ognet_video.score.manifest import Manifest
from ognet_video.score.run import EXIT_FAILED_BASE, _assign_names
from ognet_video.sinks import ScoresCsv
from ognet_video.stream.scoring import FrameScorer


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run_score(inputs, model, out, **opts) -> score_pkg.ScoreResult:
    return score_pkg.score([str(i) for i in inputs], model, out=out, opts=ScoreOptions(**opts), console=quiet_console())


def out_files(out: Path) -> dict[str, bytes]:
    """Every visible output file (not the manifest, whose line order follows completion order). An event clip counts
    by its frame count and size: x264's output is not bit-repeatable here (its pictures are checked against the
    source in test_clips)."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts) and p.name != "manifest.jsonl":
            frames = decode(p) if p.suffix == ".mp4" else []
            files[str(rel)] = f"{len(frames)} x {frames[0].shape}".encode() if frames else p.read_bytes()
    return files


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def model(trained_run) -> Path:
    return trained_run.model_path


@pytest.fixture(scope="module")
def test_frames(walkway) -> Path:
    return walkway / "testing" / "frames"


@pytest.fixture(scope="module")
def many_clips(tmp_path_factory, walkway) -> Path:
    """Five frame folders (the walkway's train and test clips) in one folder."""
    root = tmp_path_factory.mktemp("many")
    for split in ("training", "testing"):
        for d in sorted((walkway / split / "frames").iterdir()):
            shutil.copytree(d, root / f"{split[:4]}{d.name}")
    return root


# ---------------------------------------------------------------- discovery


def test_discover_mixed_inputs_globs_recursive_and_dedup(tmp_path):
    touch(tmp_path / "videos" / "b.mp4")
    touch(tmp_path / "videos" / "a.avi")
    touch(tmp_path / "videos" / "notes.txt")
    for clip in ("c1", "c2"):
        touch(tmp_path / "frames" / clip / "000.jpg")
    touch(tmp_path / "frames" / "c1_gt" / "000.bmp")  # UCSD mask folder: never a clip
    touch(tmp_path / "frames" / ".cache" / "000.jpg")  # hidden: never a clip
    touch(tmp_path / "deep" / "x" / "y" / "clip" / "000.png")
    touch(tmp_path / "deep" / "x" / "cam.mkv")
    touch(tmp_path / "flat" / "000.jpg")  # a folder given directly that is itself a clip

    clips = discover(
        [
            str(tmp_path / "videos"),
            str(tmp_path / "frames"),
            str(tmp_path / "videos" / "*.mp4"),  # again through a glob: de-duplicated
            str(tmp_path / "frames" / "c1" / "*.jpg"),  # an image glob stands for its folder
            str(tmp_path / "flat"),
        ]
    )
    got = [(str(c.path.relative_to(tmp_path)), c.kind) for c in clips]
    assert got == [
        ("flat", "frames"),
        ("frames/c1", "frames"),
        ("frames/c2", "frames"),
        ("videos/a.avi", "video"),
        ("videos/b.mp4", "video"),
    ]
    with pytest.raises(UserError, match="--recursive"):
        discover([str(tmp_path / "deep")])
    deep = discover([str(tmp_path / "deep")], recursive=True)
    assert [str(c.path.relative_to(tmp_path)) for c in deep] == ["deep/x/cam.mkv", "deep/x/y/clip"]
    assert discover([str(tmp_path / "**" / "*.mkv")], recursive=True) == deep[:1]
    # a symlink to a clip is the same clip; our own output folder is never searched
    os.symlink(tmp_path / "frames" / "c2", tmp_path / "link")
    touch(tmp_path / "runs" / "score" / "x-1" / "clips" / "c" / "annotated.mp4")
    every = discover([str(tmp_path)], recursive=True, exclude=[tmp_path / "runs" / "score"])
    assert len(every) == len({c.path for c in every}) == 7
    assert not any("runs" in c.path.parts for c in every)
    assert discover([str(tmp_path / "link"), str(tmp_path / "frames" / "c2")]) == [clips[2]]


def test_discover_bad_inputs_are_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        discover([str(tmp_path / "nope")])
    with pytest.raises(UserError, match="matched no videos"):
        discover([str(tmp_path / "*.mp4")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no videos"):
        discover([str(tmp_path / "empty")])
    with pytest.raises(UserError, match="no inputs"):
        discover([])


def test_clip_names_are_short_unique_and_stable_for_earlier_runs():
    clips = [ClipInput(Path(p), "video") for p in ("/a/cam1/x.mp4", "/a/cam2/x.mp4", "/b/y.mp4", "/c/a b.mp4")]
    assert clip_names(clips) == ["cam1__x.mp4", "cam2__x.mp4", "y.mp4", "a_b.mp4"]
    earlier = {"/z/y.mp4": ClipRecord("/z/y.mp4", "video", "y.mp4", 1, 1, 1, "m", "done")}
    assert _assign_names(clips, earlier)[2] == "y.mp4-2"  # another input already owns "y.mp4"
    long = clip_names([ClipInput(Path("/a/" + "z" * 245 + ".mp4"), "video"), ClipInput(Path("/a/zz.mp4"), "video")])
    assert len(long[0]) <= 96 and long[0] != long[1]  # a long file name still makes a valid folder name


# ---------------------------------------------------------------- scores


def read_scores(path: Path) -> dict[str, np.ndarray]:
    data = np.genfromtxt(path, delimiter=",", names=True, dtype=float)
    return {k: np.atleast_1d(data[k]) for k in data.dtype.names}


def test_scores_equal_eval_frame_scorer_on_frame_folders(tmp_path, model, detector, test_frames, walkway_ds):
    res = run_score([test_frames], model, tmp_path / "out", workers=2, timelines=True)
    assert res.exit_code == 0 and res.scored == 2 and res.skipped == 0
    cal, sc = detector.calibration, detector.cfg.score
    for clip in walkway_ds.test:
        ref = FrameScorer(detector).score_clip(read_gray(f) for f in clip.frames)  # what eval computes
        got = read_scores(tmp_path / "out" / "clips" / clip.name / "scores.csv")
        assert np.array_equal(got["raw"], ref.raw, equal_nan=True), clip.name  # exact: same path, same chunks
        assert np.array_equal(got["frame"], np.arange(len(clip)))
        assert np.allclose(got["time"], np.arange(len(clip)) / 10.0)
        sm = causal_smooth(calibrated(ref, cal), sc.causal_window, cal.empty)
        assert np.allclose(got["smoothed"], sm, atol=1e-12)
        assert np.array_equal(got["anomalous"].astype(bool), sm > cal.threshold)
        assert (tmp_path / "out" / "clips" / clip.name / "timeline.png").read_bytes()[:4] == b"\x89PNG"
        events = [
            json.loads(x) for x in (tmp_path / "out" / "clips" / clip.name / "events.jsonl").read_text().splitlines()
        ]
        rec = next(r for r in res.records if r.name == clip.name)
        assert rec.events == len(events) and rec.frames == len(clip)
        assert rec.max_score == pytest.approx(sm.max())
        assert rec.anomalous_share == pytest.approx(np.mean(sm > cal.threshold))
    summary = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("clip,input,kind,frames,max_score,anomalous_share,events,first_event_time")
    assert len(summary) == 3
    maxes = [float(line.split(",")[4]) for line in summary[1:]]
    assert maxes == sorted(maxes, reverse=True)  # worst first


def test_one_and_two_workers_give_identical_outputs(tmp_path, model, many_clips):
    run_score([many_clips], model, tmp_path / "w1", workers=1)
    run_score([many_clips], model, tmp_path / "w2", workers=2)
    a, b = out_files(tmp_path / "w1"), out_files(tmp_path / "w2")
    a.pop("run.json"), b.pop("run.json")
    assert a == b and len([k for k in a if k.endswith("scores.csv")]) == 5


# ---------------------------------------------------------------- resume and kills


def test_rerun_skips_finished_clips_and_rescoring_changed_ones(tmp_path, model, many_clips):
    out = tmp_path / "out"
    first = run_score([many_clips], model, out)
    before = out_files(out)
    again = run_score([many_clips], model, out)
    assert (again.scored, again.skipped, again.exit_code) == (0, 5, 0)
    assert out_files(out) == before and len(manifest_lines(out)) == 5
    # a changed input is scored again (and only it); asking for timelines rescored clips that lack them
    clip = many_clips / "test01"
    frame = sorted(clip.iterdir())[3]
    os.utime(frame, ns=(time.time_ns(), time.time_ns()))
    changed = run_score([many_clips], model, out)
    assert (changed.scored, changed.skipped) == (1, 4)
    assert out_files(out) == before
    with_tl = run_score([many_clips], model, out, timelines=True)
    assert with_tl.scored == 5 and (out / "clips" / "test01" / "timeline.png").is_file()
    assert [r.name for r in first.records] == [r.name for r in with_tl.records]


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the run loop catches it."""


@pytest.mark.parametrize("where", ["mid-clip", "after-publish", "mid-manifest"])
def test_kill_at_any_point_then_rerun_equals_uninterrupted(tmp_path, monkeypatch, model, many_clips, where):
    ref = tmp_path / "ref"
    run_score([many_clips], model, ref, workers=2)
    out = tmp_path / "out"
    calls = {"n": 0}
    if where == "mid-clip":  # inside the third clip, a scores.csv half written in its temp folder
        orig = ScoresCsv.write

        def write(self, *args):
            orig(self, *args)
            calls["n"] += 1
            if calls["n"] == 5:
                self.f.flush()
                raise Killed

        monkeypatch.setattr(ScoresCsv, "write", write)
    elif where == "after-publish":  # the third clip's folder is in place, its manifest line is not
        orig_append = Manifest.append

        def append(self, rec):
            calls["n"] += 1
            if calls["n"] == 3:
                raise Killed
            orig_append(self, rec)

        monkeypatch.setattr(Manifest, "append", append)
    else:  # a torn manifest line: half of the third record written, then death
        orig_append = Manifest.append

        def append(self, rec):
            calls["n"] += 1
            if calls["n"] == 3:
                self.f.write(json.dumps(dataclasses.asdict(rec)).encode()[:40])
                self.f.flush()
                raise Killed
            orig_append(self, rec)

        monkeypatch.setattr(Manifest, "append", append)
    with pytest.raises(Killed):
        run_score([many_clips], model, out, workers=2)
    monkeypatch.undo()
    done = [r["input"] for r in manifest_lines_tolerant(out)]
    assert 1 <= len(done) <= 2
    res = run_score([many_clips], model, out, workers=2)
    assert (res.skipped, res.scored, res.exit_code) == (len(done), 5 - len(done), 0)
    recs = manifest_lines_tolerant(out)
    assert sorted(r["input"] for r in recs) == sorted(str(p) for p in many_clips.iterdir())  # each exactly once
    assert not [p for p in (out / "clips").iterdir() if p.name.startswith(".")]  # no temp leftovers
    a, b = out_files(ref), out_files(out)
    a.pop("run.json"), b.pop("run.json")
    assert a == b


def manifest_lines_tolerant(out: Path) -> list[dict]:
    return [dataclasses.asdict(r) for r in read_manifest(out).values()]


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from ognet_video import score
from ognet_video.stream.scoring import StreamScorer
push = StreamScorer.push
def slow(self, *args, **kw):
    time.sleep(0.05)
    return push(self, *args, **kw)
StreamScorer.push = slow
score.score([sys.argv[1]], sys.argv[2], out=Path(sys.argv[3]), opts=score.ScoreOptions(workers=2))
"""


def test_sigkill_subprocess_then_rerun(tmp_path, model, many_clips):
    """A real SIGKILL in the middle of a run (scoring slowed so the kill lands mid-run)."""
    ref, out = tmp_path / "ref", tmp_path / "out"
    run_score([many_clips], model, ref, workers=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    args = [sys.executable, "-c", KILL_SCRIPT, str(many_clips), str(model), str(out)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "manifest.jsonl").is_file() and len(manifest_lines(out)) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(manifest_lines(out)) < 5 and all(r["status"] == "done" for r in manifest_lines(out))
    res = run_score([many_clips], model, out, workers=2)
    assert res.skipped + res.scored == 5 and res.exit_code == 0
    assert sorted(r["input"] for r in manifest_lines(out)) == sorted(str(p) for p in many_clips.iterdir())
    a, b = out_files(ref), out_files(out)
    a.pop("run.json"), b.pop("run.json")
    assert a == b


# ---------------------------------------------------------------- failures, videos, the model


def test_corrupt_inputs_fail_with_reason_and_the_rest_is_scored(tmp_path, model, test_frames, walkway_ds):
    root = tmp_path / "in"
    for d in test_frames.iterdir():
        shutil.copytree(d, root / d.name)
    frames = [read_gray(f) for f in walkway_ds.test[0].frames]
    write_mp4(root / "good.mp4", frames)
    touch(root / "bad.mp4", os.urandom(2000))
    broken = root / "broken"
    shutil.copytree(test_frames / "01", broken)
    touch(sorted(broken.iterdir())[7], b"not a jpeg")
    res = run_score([root], model, tmp_path / "out")
    status = {r.name: (r.status, r.reason) for r in res.records}
    assert {k for k, (s, _) in status.items() if s == "done"} == {"01", "02", "good.mp4", "broken"}
    assert "bad.mp4" in status["bad.mp4"][1] and "cannot" in status["bad.mp4"][1]
    assert "007" in status["broken"][1]  # the unreadable frame is named; the clip is scored without it
    assert res.exit_code == EXIT_FAILED_BASE + 1
    rows = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert rows[-1].split(",")[9] == "failed" and rows[-2].split(",")[9] == "done"
    # failed clips are tried again; once fixed, they are scored
    (root / "bad.mp4").unlink()
    touch(root / "dead" / "000.jpg", b"not a jpeg")  # no readable frame: the clip fails, leaving no output
    again = run_score([root], model, tmp_path / "out")
    status = {r.name: (r.status, r.reason) for r in again.records}
    assert status["dead"][0] == "failed" and "000.jpg" in status["dead"][1] and again.exit_code == EXIT_FAILED_BASE + 1
    assert not (tmp_path / "out" / "clips" / "dead").exists()  # no half output of a failed clip
    shutil.copytree(test_frames / "02", root / "dead", dirs_exist_ok=True)
    again = run_score([root], model, tmp_path / "out")
    assert (again.scored, again.exit_code) == (1, 0)  # "dead" again, readable now; bad.mp4 is gone


def test_mp4_input_scores_like_its_decoded_frames(tmp_path, model, detector, walkway_ds):
    frames = [read_gray(f) for f in walkway_ds.test[1].frames]
    video = write_mp4(tmp_path / "cam.mp4", frames, fps=5.0)
    res = run_score([video], model, tmp_path / "out")
    assert res.exit_code == 0 and res.records[0].frames == len(frames)
    decoded = []
    cap = cv2.VideoCapture(str(video))
    while (ok_img := cap.read())[0]:
        decoded.append(ok_img[1])
    ref = FrameScorer(detector).score_clip(decoded)
    got = read_scores(tmp_path / "out" / "clips" / "cam.mp4" / "scores.csv")
    assert np.array_equal(got["raw"], ref.raw, equal_nan=True)
    assert np.allclose(got["time"], np.arange(len(frames)) / 5.0, atol=1e-3)


def test_save_video_writes_an_annotated_mp4_per_clip(tmp_path, model, test_frames):
    res = run_score([test_frames], model, tmp_path / "out", save_video=True)
    assert res.exit_code == 0
    for rec in res.records:
        cap = cv2.VideoCapture(str(tmp_path / "out" / "clips" / rec.name / "annotated.mp4"))
        n = 0
        while cap.read()[0]:
            n += 1
        assert n == rec.frames and "video" in rec.extras
    assert not [p for p in (tmp_path / "out").rglob(".*") if p.name != ".lock"]  # no partial files left


def test_a_different_model_for_the_same_out_is_refused(tmp_path, model, detector, test_frames):
    run_score([test_frames], model, tmp_path / "out")
    other = detector.save(tmp_path / "other.safetensors", extra={"note": "another model"})
    with pytest.raises(UserError, match="another model"):
        run_score([test_frames], other, tmp_path / "out")
    with pytest.raises(UserError, match="--fps"):
        run_score([test_frames], model, tmp_path / "out", fps=25.0)
    with pytest.raises(UserError, match="not a score folder"):
        run_score([test_frames], model, model.parent)  # a training run folder by mistake


# ---------------------------------------------------------------- the command line


def test_cli_score_and_its_errors(tmp_path, main_cli, monkeypatch, model, test_frames):
    monkeypatch.setattr(cli_common, "console", quiet_console())
    monkeypatch.chdir(tmp_path)
    proc = main_cli("score", test_frames, "--model", model.parent)  # default workers: 1 on CPU
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "runs" / "score" / "frames-1" / "summary.csv").is_file()  # a numbered default run folder
    out = cli_common.console.file.getvalue()
    assert "found 2 clips" in out and "worst first" in out and "decode workers: 1" in out
    (tmp_path / "empty_run").mkdir()
    for args, needle in (
        ((tmp_path / "nope",), "does not exist"),
        ((test_frames, "--model", tmp_path / "empty_run"), "no model.safetensors"),
        ((str(tmp_path / "*.mp4"), "--model", model), "matched no videos"),
        ((test_frames, "--model", model, "--workers", "0"), "--workers"),
    ):
        cli_common.console.file.seek(0)
        cli_common.console.file.truncate()
        proc = main_cli("score", *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert needle in cli_common.console.file.getvalue()
    touch(tmp_path / "clips" / "bad.mp4", b"junk")
    proc = main_cli("score", tmp_path / "clips", "--model", model, "--name", "o")
    assert proc.returncode == EXIT_FAILED_BASE + 1
    assert "1 of 1 clips not scored" in cli_common.console.file.getvalue()
    assert (tmp_path / "runs" / "score" / "o-1" / "summary.csv").is_file()


def test_a_long_file_name_is_scored_and_a_cut_off_video_is_reported(tmp_path, model, walkway_ds):
    frames = [read_gray(f) for f in walkway_ds.test[0].frames]
    root = tmp_path / "in"
    root.mkdir()
    long = write_mp4(root / ("z" * 245 + ".mp4"), frames)  # a 249-byte file name: no longer folder name is made
    whole = root / "cut.avi"
    vw = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 10, (360, 240))
    for f in frames * 3:
        vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    vw.release()
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) // 2])  # the container still says 60 frames
    res = run_score([root], model, tmp_path / "out")
    recs = {Path(r.input).name: r for r in res.records}
    ok = recs[long.name]
    assert ok.status == "done" and ok.frames == len(frames) and len(ok.name) <= 96
    assert (tmp_path / "out" / "clips" / ok.name / "scores.csv").is_file()
    cut = recs["cut.avi"]
    assert cut.status == "short" and "of 60 frames" in cut.reason and 0 < cut.frames < 60
    assert res.exit_code == EXIT_FAILED_BASE + 1  # a clip that ends early counts as not scored
    assert "short" in (tmp_path / "out" / "summary.csv").read_text()


INTERRUPT_SCRIPT = (
    KILL_SCRIPT.replace(
        "from ognet_video import score\n",
        "from ognet_video import score\nfrom ognet_video.stream.engine import install_signal_handlers\ninstall_signal_handlers()\n",
    ).replace("score.score(", "res = score.score(")
    + "sys.exit(res.exit_code)\n"
)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_keeps_finished_clips_and_writes_the_summary(tmp_path, model, many_clips, sig, code):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    args = [sys.executable, "-c", INTERRUPT_SCRIPT, str(many_clips), str(model), str(out)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(read_manifest(out)) < 2:
        time.sleep(0.02)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == code, proc.stderr.read().decode()[-2000:]
    done = manifest_lines(out)
    assert 2 <= len(done) < 5 and all(r["status"] == "done" for r in done)  # the clip in flight is not "failed"
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + len(done)
    assert not [p for p in (out / "clips").iterdir() if p.name.startswith(".")]  # its temp folder is gone
    res = run_score([many_clips], model, out, workers=2)
    assert (res.skipped, res.scored, res.exit_code) == (len(done), 5 - len(done), 0)


def test_event_frames_can_change_at_scoring_time_and_is_recorded(tmp_path, model, test_frames):
    one = score_pkg.score([str(test_frames)], model, out=tmp_path / "k1", overrides=["score.event_frames=1"],
                          console=quiet_console())  # fmt: skip
    three = run_score([test_frames], model, tmp_path / "k3")
    assert sum(r.events for r in one.records) >= sum(r.events for r in three.records)
    assert json.loads((tmp_path / "k1" / "run.json").read_text())["event_frames"] == 1
    with pytest.raises(UserError, match="event_frames=1"):
        run_score([test_frames], model, tmp_path / "k1")  # resuming with another setting is refused
    with pytest.raises(UserError, match="fixed when the model is trained"):
        score_pkg.score([str(test_frames)], model, out=tmp_path / "x", overrides=["score.causal_window=2"],
                        console=quiet_console())  # fmt: skip
