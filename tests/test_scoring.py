from __future__ import annotations

import numpy as np
import pytest
import torch

from ognet_video.config import ScoreConfig
from ognet_video.data import read_gray
from ognet_video.models.detector import Detector
from ognet_video.stream.scoring import FrameScorer, aggregate


@pytest.fixture(scope="module")
def clip_frames(walkway_ds):
    return [read_gray(f) for f in walkway_ds.test[0].frames]


def test_chunk_size_does_not_change_scores(detector, clip_frames):
    scorer = FrameScorer(detector)
    ref = scorer.score_clip(clip_frames, batch=16)
    n = scorer.extractor.num_cells
    assert ref.raw.shape == (20,) and ref.patch.shape == (20, n) and ref.motion.shape == (20, n)
    assert np.isfinite(ref.patch).sum() > 20  # enough moving patches for the comparison to mean something
    for batch in (1, 7, 20):
        fs = scorer.score_clip(clip_frames, batch=batch)
        assert np.allclose(fs.raw, ref.raw, rtol=1e-5, atol=1e-6, equal_nan=True), batch
        assert np.allclose(fs.patch, ref.patch, rtol=1e-5, atol=1e-6, equal_nan=True), batch
        assert np.array_equal(fs.motion, ref.motion), batch


def test_live_stream_one_frame_at_a_time_equals_offline(detector, clip_frames):
    offline = FrameScorer(detector).score_clip(clip_frames)
    live = FrameScorer(detector)
    raw = np.concatenate([live.score([f]).raw for f in clip_frames])
    assert np.allclose(raw, offline.raw, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_first_frame_is_unscored_and_a_static_frame_gets_the_floor_after_the_model(detector, clip_frames):
    from ognet_video.decide import calibrated

    frames = [clip_frames[0], clip_frames[0], *clip_frames[1:]]  # frame 1 repeats frame 0: nothing moves
    scorer = FrameScorer(detector)
    fs = scorer.score_clip(frames)
    assert np.all(np.isnan(fs.patch[:2])) and np.all(fs.motion[:2] == 0)
    assert fs.scored.tolist() == [False] + [True] * (len(frames) - 1)  # no predecessor: no motion is known
    assert np.isnan(fs.raw[:2]).all()  # raw: the model's score only, whether or not the detector is calibrated
    cal = detector.calibration
    z = calibrated(fs, cal)
    assert np.isnan(z[0]) and z[1] == cal.empty  # calibration: unscored stays NaN, nothing moved -> the floor
    assert np.isfinite(z[1:]).all()
    # streaming on after the first chunk: no frame is unscored again until a reset
    assert scorer.score(clip_frames[:3]).scored.all()
    scorer.reset()
    assert not scorer.score(clip_frames[:3]).scored[0]


def test_score_clip_resets_between_clips(detector, clip_frames):
    scorer = FrameScorer(detector)
    scorer.score_clip(clip_frames[::-1])
    again = scorer.score_clip(clip_frames)
    fresh = FrameScorer(detector).score_clip(clip_frames)
    assert np.array_equal(again.motion, fresh.motion)


def test_raw_scores_do_not_depend_on_calibration(detector, clip_frames):
    det = Detector(detector.cfg, detector.members, calibration=None)
    a, b = FrameScorer(det).score_clip(clip_frames), FrameScorer(detector).score_clip(clip_frames)
    assert np.array_equal(a.raw, b.raw, equal_nan=True) and np.array_equal(a.patch, b.patch, equal_nan=True)


def test_frame_score_is_max_of_moving_patch_scores(detector, clip_frames):
    fs = FrameScorer(detector).score_clip(clip_frames)
    moving = fs.motion > detector.cfg.patches.motion_threshold
    assert np.array_equal(np.isfinite(fs.patch), moving)  # exactly the moving cells are scored
    t = int(np.argmax(moving.sum(axis=1)))
    assert fs.raw[t] == pytest.approx(np.nanmax(fs.patch[t]))


def test_color_and_odd_sized_frames_are_accepted(detector, clip_frames):
    import cv2

    bgr = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR), (720, 480)) for f in clip_frames[:4]]
    fs = FrameScorer(detector).score_clip(bgr)
    assert fs.raw.shape == (4,) and fs.patch.shape == (4, FrameScorer(detector).extractor.num_cells)


def test_empty_clip_scores(detector):
    fs = FrameScorer(detector).score_clip([])
    assert fs.raw.shape == (0,) and fs.patch.shape == (0, FrameScorer(detector).extractor.num_cells)


def test_aggregate_max_and_topk_by_hand():
    nan = np.nan
    patch = np.array([[1.0, nan, 3.0, 2.0], [nan, 5.0, nan, nan], [nan, nan, nan, nan]])
    mx = aggregate(patch, ScoreConfig(aggregate="max"))
    assert mx[:2].tolist() == [3.0, 5.0] and np.isnan(mx[2])
    top2 = aggregate(patch, ScoreConfig(aggregate="topk", topk=2))
    assert top2[:2].tolist() == [2.5, 5.0] and np.isnan(top2[2])
    top9 = aggregate(patch, ScoreConfig(aggregate="topk", topk=9))
    assert top9[:2].tolist() == [2.0, 5.0]


def test_stream_scorer_matches_frame_scorer_and_flags_with_threshold(detector, clip_frames):
    from ognet_video.decide import calibrated, causal_smooth
    from ognet_video.stream.scoring import StreamScorer

    offline = FrameScorer(detector).score_clip(clip_frames)
    ss = StreamScorer(detector)
    results = []
    for i in range(0, len(clip_frames), 3):  # odd chunking on purpose
        res, _ = ss.push(clip_frames[i : i + 3], [j / 10 for j in range(i, min(i + 3, len(clip_frames)))])
        results += res
    ss.finish()
    assert [r.index for r in results] == list(range(len(clip_frames)))
    raw = np.array([r.raw for r in results])
    assert np.isnan(raw[0]) and np.isnan(offline.raw[0])  # no predecessor: unscored
    assert results[0].to_dict()["raw"] is None and not results[0].anomalous
    assert np.allclose(raw, offline.raw, rtol=1e-5, atol=1e-6, equal_nan=True)
    cal = detector.calibration
    z = np.array([r.score for r in results])
    assert np.allclose(z, calibrated(offline, cal), rtol=1e-4, atol=1e-4, equal_nan=True)
    sm = causal_smooth(z, detector.cfg.score.causal_window, cal.empty)
    assert np.array_equal([r.smoothed for r in results], sm)  # chunked smoothing is the whole clip's, bit for bit
    assert [r.anomalous for r in results] == list(sm > cal.threshold)
    moving = [r for r in results if np.isfinite(r.patch).any()]
    assert moving and all(r.worst_box is not None and r.worst_box[2] > r.worst_box[0] for r in moving)
    assert results[5].to_dict()["time"] == 0.5


def test_stream_scorer_carries_source_frame_numbers_into_results_and_events(detector, clip_frames):
    from ognet_video.stream.scoring import StreamScorer

    ss = StreamScorer(detector)
    ss.threshold = -np.inf  # every frame above threshold: one event over the whole clip
    idx = [10 * i for i in range(len(clip_frames))]  # e.g. a stride of 10
    results, _ = ss.push(clip_frames, indices=idx)
    ev = ss.finish()
    assert [r.index for r in results] == idx
    assert ev is not None and (ev.start, ev.end) == (0, idx[-1]) and ev.peak_frame in idx


class _FlowSpeed(torch.nn.Module):
    """A stand-in "D(G(x))": the patch's mean flow x, so the score moves with every flow value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0].mean(dim=(1, 2))


def test_flow_model_scores_the_same_in_chunks_as_in_one_pass(clip_frames):
    """The flow of a chunk's first frame comes from the previous chunk's last frame."""
    from ognet_video.config import Config

    cfg = Config()
    cfg.patches.channels = "flow"
    cfg.patches.flow_scale = 1.0
    det = Detector(cfg, [(torch.nn.Identity(), _FlowSpeed())], device=torch.device("cpu"))
    scorer = FrameScorer(det)
    ref = scorer.score_clip(clip_frames, batch=len(clip_frames))
    assert np.isfinite(ref.patch).sum() > 20 and np.nanstd(ref.patch) > 0.05
    for batch in (1, 3):
        fs = scorer.score_clip(clip_frames, batch=batch)
        assert np.allclose(fs.patch, ref.patch, rtol=1e-5, atol=1e-6, equal_nan=True), batch
