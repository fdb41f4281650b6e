from __future__ import annotations

import numpy as np
import pytest
import torch

from ognet_video.config import PatchConfig
from ognet_video.patches import PatchExtractor, optical_flow, to_tensor

GRID45 = {"size": 45, "height": 225, "width": 360, "stride": 45}  # the paper's 5 x 8 grid


def paper_grid(**kw) -> PatchConfig:
    """Gray 45 px cells on 225x360 frames (no flow to compute), with ``kw`` on top."""
    return PatchConfig(**{**GRID45, "channels": "gray", **kw})


def random_frames(t: int, h: int = 225, w: int = 360, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w), dtype=np.uint8)


def test_default_grid_is_8x12_cells_of_29():
    ex = PatchExtractor(PatchConfig())
    assert (ex.rows, ex.cols, ex.num_cells) == (8, 12, 96)
    assert ex.boxes[0].tolist() == [0, 0, 29, 29] and ex.boxes[95].tolist() == [319, 203, 348, 232]


def test_large_grid_is_8x12_cells_29_apart_seen_at_45():
    ex = PatchExtractor(PatchConfig(size=45, height=248, width=364))
    assert (ex.rows, ex.cols, ex.num_cells) == (8, 12, 96)
    assert ex.boxes[0].tolist() == [0, 0, 45, 45] and ex.boxes[95].tolist() == [319, 203, 364, 248]


def test_paper_grid_is_5x8_of_45():
    ex = PatchExtractor(paper_grid())
    assert (ex.rows, ex.cols, ex.num_cells) == (5, 8, 40)
    cp = ex.extract(random_frames(2))
    assert cp.gray.shape == (2, 40, 45, 45) and cp.gray.dtype == np.uint8
    assert cp.diff.shape == (2, 40, 45, 45)
    assert cp.motion.shape == (2, 40)
    assert ex.boxes[0].tolist() == [0, 0, 45, 45]
    assert ex.boxes[7].tolist() == [315, 0, 360, 45]  # row-major: cell 7 is the end of the first row
    assert ex.boxes[39].tolist() == [315, 180, 360, 225]


@pytest.mark.parametrize("cell", [0, 1, 7, 8, 21, 34, 39])
def test_cell_content_is_the_frame_slice(cell):
    frames = random_frames(3)
    cp = PatchExtractor(paper_grid()).extract(frames)
    r, c = divmod(cell, 8)
    y, x = r * 45, c * 45
    for t in range(3):
        assert np.array_equal(cp.gray[t, cell], frames[t, y : y + 45, x : x + 45])


def test_overlapping_grid_cells():
    cfg = paper_grid(stride=30)
    ex = PatchExtractor(cfg)
    assert (ex.rows, ex.cols) == ((225 - 45) // 30 + 1, (360 - 45) // 30 + 1)
    frames = random_frames(1, seed=4)
    cp = ex.extract(frames)
    r, c = 3, 5
    cell = r * ex.cols + c
    assert np.array_equal(cp.gray[0, cell], frames[0, 90:135, 150:195])
    assert ex.boxes[cell].tolist() == [150, 90, 195, 135]


def test_motion_is_mean_absolute_difference():
    frames = random_frames(4, seed=1)
    cp = PatchExtractor(paper_grid()).extract(frames)
    f = frames.astype(np.float64)
    for t in (1, 2, 3):
        for cell in (0, 13, 39):
            r, c = divmod(cell, 8)
            sl = (slice(r * 45, r * 45 + 45), slice(c * 45, c * 45 + 45))
            want = np.abs(f[t][sl] - f[t - 1][sl]).mean()
            assert cp.motion[t, cell] == pytest.approx(want, rel=1e-5)
            # signed difference, no uint8 wrap-around
            assert np.array_equal(cp.diff[t, cell], f[t][sl].astype(np.int64) - f[t - 1][sl].astype(np.int64))
    assert cp.diff.min() < 0


def test_first_frame_without_prev_has_no_motion_and_prev_is_used():
    frames = random_frames(3, seed=2)
    ex = PatchExtractor(paper_grid())
    cp = ex.extract(frames)
    assert np.all(cp.motion[0] == 0) and np.all(cp.diff[0] == 0)
    assert np.all(cp.motion[1] > 0)

    prev = random_frames(1, seed=3)[0]
    cp2 = ex.extract(frames, prev=prev)
    want = np.abs(frames[0, :45, :45].astype(np.float64) - prev[:45, :45]).mean()
    assert cp2.motion[0, 0] == pytest.approx(want, rel=1e-5)
    assert np.array_equal(cp2.motion[1:], cp.motion[1:])
    # splitting a clip and passing the last frame as prev gives the same motion as one pass
    cp3 = ex.extract(frames[1:], prev=frames[0])
    assert np.array_equal(cp3.motion, cp.motion[1:])
    # prev may also be a stack of past frames, the last of which is the previous frame
    cp4 = ex.extract(frames[2:], prev=frames[:2])
    assert np.array_equal(cp4.motion, cp.motion[2:]) and ex.history_frames == 1


def test_moving_uses_threshold():
    ex = PatchExtractor(paper_grid(motion_threshold=2.0))
    assert ex.moving(np.array([[0.0, 2.0, 2.01, 50.0]])).tolist() == [[False, False, True, True]]


def test_static_frames_have_no_moving_cells():
    frames = np.repeat(random_frames(1, seed=5), 4, axis=0)
    ex = PatchExtractor(paper_grid())
    assert not ex.moving(ex.extract(frames).motion).any()


@pytest.mark.parametrize(
    ("bgr", "gray"),
    [((255, 0, 0), 0.114 * 255), ((0, 255, 0), 0.587 * 255), ((0, 0, 255), 0.299 * 255)],
)
def test_prepare_converts_bgr_and_resizes(bgr, gray):
    ex = PatchExtractor(paper_grid())
    frame = np.zeros((240, 360, 3), np.uint8)
    frame[:] = bgr
    out = ex.prepare(frame)
    assert out.shape == (225, 360) and out.dtype == np.uint8
    assert np.all(np.abs(out.astype(int) - round(gray)) <= 1)
    bgra = np.concatenate([frame, np.full((240, 360, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(ex.prepare(bgra), out)


def test_prepare_resizes_any_size_and_keeps_exact_size_untouched():
    ex = PatchExtractor(paper_grid())
    exact = random_frames(1, seed=6)[0]
    assert np.array_equal(ex.prepare(exact), exact)
    # a left/right split image keeps its halves after resizing from 480x720
    big = np.zeros((480, 720), np.uint8)
    big[:, 360:] = 200
    out = ex.prepare(big)
    assert out.shape == (225, 360)
    assert np.all(out[:, :170] == 0) and np.all(out[:, 190:] == 200)
    assert ex.prepare(np.full((225, 360), 300.0)).max() == 255


def test_boxes_for_scales_to_original_frame():
    ex = PatchExtractor(paper_grid())
    boxes = ex.boxes_for((240, 360))
    assert boxes[39].tolist() == [315, 192, 360, 240]  # 180 * 240/225 = 192, 225 * 240/225 = 240


def test_to_tensor_range_and_channels():
    gray = np.array([[[0, 255], [127, 128]]], np.uint8)
    x = to_tensor(paper_grid(), gray)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert x[0, 0, 0, 0] == -1.0 and x[0, 0, 0, 1] == 1.0
    flow = np.array([[[[-9.0, 1.0], [0.0, 3.0]], [[2.0, -2.0], [0.5, 8.0]]]], np.float16)  # (1, 2, 2, 2): x, y
    f = to_tensor(PatchConfig(channels="flow", flow_scale=2.0), gray, flow)
    assert f.shape == (1, 2, 2, 2) and f.dtype == torch.float32
    assert f[0].tolist() == [[[-1.0, 0.5], [0.0, 1.0]], [[1.0, -1.0], [0.25, 1.0]]]  # / flow_scale, clamped
    with pytest.raises(ValueError, match="flow"):
        to_tensor(PatchConfig(channels="flow"), gray)


def _moving_square(t: int = 6, step: int = 3) -> np.ndarray:
    """A bright 20x20 square moving ``step`` pixels right per frame on a textured background."""
    rng = np.random.default_rng(0)
    bg = rng.integers(40, 90, size=(225, 360)).astype(np.uint8)
    frames = np.repeat(bg[None], t, axis=0)
    for i in range(t):
        frames[i, 100:120, 100 + step * i : 120 + step * i] = 220
    return frames


@pytest.mark.parametrize("preset", ["fast", "medium"])
def test_flow_channels_measure_speed_and_do_not_depend_on_chunking(preset):
    from ognet_video.config import Config
    from ognet_video.models.model import in_channels

    cfg = PatchConfig(**GRID45, channels="flow", flow_scale=4.0, flow_preset=preset)
    full = Config()
    full.patches = cfg
    assert in_channels(full) == 2
    ex = PatchExtractor(cfg)
    frames = _moving_square()
    cp = ex.extract(frames)
    assert cp.flow is not None and cp.flow.shape == (6, 40, 2, 45, 45)
    assert np.all(cp.flow[0] == 0)  # first frame: no predecessor
    cell = 2 * 8 + 2  # row 2, col 2 holds the square (y 90-135, x 90-135)
    fx = cp.flow[3, cell, 0].astype(np.float32)
    assert 1.5 < np.percentile(fx, 99) < 4.5  # about 3 px/frame to the right
    # frame t's flow is from frame t-1 to t
    assert np.array_equal(ex.frame_flow(frames)[4], optical_flow(frames[3:4], frames[4:5], preset)[0])
    # scoring feeds frames in chunks with the previous frame (alone or as the last of a stack): same as one pass
    for prev in (frames[2], frames[:3], frames[2:3]):
        later = ex.extract(frames[3:], prev)
        assert np.array_equal(later.flow, cp.flow[3:]) and np.array_equal(later.motion, cp.motion[3:])
    x = ex.select(cp, ex.moving(cp.motion))
    assert x.shape[1] == 2 and x.abs().max() <= 1.0
    assert torch.equal(x, torch.from_numpy(cp.flow[ex.moving(cp.motion)]).float().div(4.0).clamp(-1, 1))


def test_flow_in_several_workers_is_bit_identical_and_survives_a_fork():
    import multiprocessing

    frames = _moving_square(t=9, step=2)
    one = optical_flow(frames[:-1], frames[1:], "medium", workers=1)
    assert np.abs(one[3]).max() > 1  # the square moves: a flow that is not all zero
    for workers in (2, 3, 8, 20):  # spans of 4/4, 3/3/2, one pair each; more workers than pairs
        assert np.array_equal(optical_flow(frames[:-1], frames[1:], "medium", workers=workers), one)
    # a forked child (a process pool's worker) makes its own threads: the parent's pool is not inherited
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply(optical_flow, (frames[:-1], frames[1:], "medium", 2))
    assert np.array_equal(child, one)


def test_flow_is_computed_only_for_frames_that_move_and_the_patches_are_the_same():
    cfg = PatchConfig(**GRID45, channels="flow", flow_scale=4.0, flow_preset="medium")
    ex = PatchExtractor(cfg)
    frames = _moving_square(t=8, step=3)
    frames[4] = frames[3]  # frame 4 repeats frame 3: nothing moves, its flow is never read
    cp = ex.extract(frames)
    still = ~ex.moving(cp.motion).any(axis=1)
    assert still.tolist() == [True, False, False, False, True, False, False, False]
    assert not cp.flow[still].any()  # skipped: zero
    every = ex.frame_flow(frames)
    full = ex.extract(frames, flow=every)  # every pair computed
    assert full.flow[~still].any() and np.array_equal(full.flow[~still], cp.flow[~still])
    moving = ex.moving(cp.motion)
    assert torch.equal(ex.select(cp, moving), ex.select(full, moving))
    pairs = optical_flow(frames[:-1], frames[1:], "medium", workers=2, needed=~still[1:])
    assert not pairs[3].any() and np.array_equal(pairs[4], every[5])
