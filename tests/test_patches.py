from __future__ import annotations

import numpy as np
import pytest
import torch

from ognet_video.config import PatchConfig
from ognet_video.patches import PatchExtractor, optical_flow, to_tensor


def random_frames(t: int, h: int = 225, w: int = 360, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w), dtype=np.uint8)


def test_default_grid_is_5x8_of_45():
    ex = PatchExtractor(PatchConfig())
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
    cp = PatchExtractor(PatchConfig()).extract(frames)
    r, c = divmod(cell, 8)
    y, x = r * 45, c * 45
    for t in range(3):
        assert np.array_equal(cp.gray[t, cell], frames[t, y : y + 45, x : x + 45])


def test_overlapping_grid_cells():
    cfg = PatchConfig(size=45, stride=30, height=225, width=360)
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
    cp = PatchExtractor(PatchConfig()).extract(frames)
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
    ex = PatchExtractor(PatchConfig())
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


def test_moving_uses_threshold():
    ex = PatchExtractor(PatchConfig(motion_threshold=2.0))
    assert ex.moving(np.array([[0.0, 2.0, 2.01, 50.0]])).tolist() == [[False, False, True, True]]


def test_static_frames_have_no_moving_cells():
    frames = np.repeat(random_frames(1, seed=5), 4, axis=0)
    ex = PatchExtractor(PatchConfig())
    assert not ex.moving(ex.extract(frames).motion).any()


@pytest.mark.parametrize(
    ("bgr", "gray"),
    [((255, 0, 0), 0.114 * 255), ((0, 255, 0), 0.587 * 255), ((0, 0, 255), 0.299 * 255)],
)
def test_prepare_converts_bgr_and_resizes(bgr, gray):
    ex = PatchExtractor(PatchConfig())
    frame = np.zeros((240, 360, 3), np.uint8)
    frame[:] = bgr
    out = ex.prepare(frame)
    assert out.shape == (225, 360) and out.dtype == np.uint8
    assert np.all(np.abs(out.astype(int) - round(gray)) <= 1)
    bgra = np.concatenate([frame, np.full((240, 360, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(ex.prepare(bgra), out)


def test_prepare_resizes_any_size_and_keeps_exact_size_untouched():
    ex = PatchExtractor(PatchConfig())
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
    ex = PatchExtractor(PatchConfig())
    boxes = ex.boxes_for((240, 360))
    assert boxes[39].tolist() == [315, 192, 360, 240]  # 180 * 240/225 = 192, 225 * 240/225 = 240


def test_to_tensor_range_and_channels():
    gray = np.array([[[0, 255], [127, 128]]], np.uint8)
    diff = np.array([[[-255, 255], [0, 300]]], np.int16)
    x = to_tensor(gray, diff, PatchConfig(channels="gray"))
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert x[0, 0, 0, 0] == -1.0 and x[0, 0, 0, 1] == 1.0
    x2 = to_tensor(gray, diff, PatchConfig(channels="gray+diff"))
    assert x2.shape == (1, 2, 2, 2)
    assert torch.equal(x2[:, :1], x)
    assert x2[0, 1].tolist() == [[-1.0, 1.0], [0.0, 1.0]]  # clamped to [-1, 1]


def _moving_square(t: int = 6, step: int = 3) -> np.ndarray:
    """A bright 20x20 square moving ``step`` pixels right per frame on a textured background."""
    rng = np.random.default_rng(0)
    bg = rng.integers(40, 90, size=(225, 360)).astype(np.uint8)
    frames = np.repeat(bg[None], t, axis=0)
    for i in range(t):
        frames[i, 100:120, 100 + step * i : 120 + step * i] = 220
    return frames


@pytest.mark.parametrize("preset", ["ultrafast", "fast", "medium", "full"])
def test_flow_channels_measure_speed_and_do_not_depend_on_chunking(preset):
    from ognet_video.config import Config
    from ognet_video.model import in_channels

    cfg = PatchConfig(channels="gray+flow", flow_scale=4.0, flow_preset=preset)
    full = Config()
    full.patches = cfg
    assert in_channels(full) == 3
    ex = PatchExtractor(cfg)
    frames = _moving_square()
    cp = ex.extract(frames)
    assert cp.flow is not None and cp.flow.shape == (6, 40, 2, 45, 45)
    assert np.all(cp.flow[0] == 0)  # first frame: no predecessor
    cell = 2 * 8 + 2  # row 2, col 2 holds the square (y 90-135, x 90-135)
    fx = cp.flow[3, cell, 0].astype(np.float32)
    assert 1.5 < np.percentile(fx, 99) < 4.5  # about 3 px/frame to the right
    later = ex.extract(frames[3:], frames[2])
    assert np.array_equal(later.flow, cp.flow[3:])
    x = ex.select(cp, ex.moving(cp.motion))
    assert x.shape[1] == 3 and x[:, 1:].abs().max() <= 1.0


def test_flow_step_measures_over_a_longer_baseline_in_pixels_per_frame_and_streams_exactly():
    frames = _moving_square(t=8, step=1)  # 1 px per frame: the slow case a longer baseline is for
    ex1 = PatchExtractor(PatchConfig(channels="flow", flow_preset="medium"))
    ex3 = PatchExtractor(PatchConfig(channels="flow", flow_preset="medium", flow_step=3))
    assert (ex1.history_frames, ex3.history_frames) == (1, 3)
    f3 = ex3.frame_flow(frames)
    assert np.all(f3[0] == 0)
    one = optical_flow(frames[:1], frames[1:2], "medium")
    assert np.array_equal(f3[1], one[0])  # frame 1 has one predecessor: a one-frame gap
    three = optical_flow(frames[2:3], frames[5:6], "medium").astype(np.float32) / 3
    assert np.array_equal(f3[5], three[0].astype(np.float16))  # frame 5: from frame 2, divided by 3
    square = f3[5, 102:118, 106:120, 0].astype(np.float32)
    assert 0.5 < np.median(square) < 1.5  # still about 1 px per frame
    assert not np.array_equal(f3[5], ex1.frame_flow(frames)[5])
    # scoring feeds frames in chunks with the last flow_step frames as history: same flow as one pass
    whole = ex3.extract(frames)
    for cut in (1, 2, 4):
        later = ex3.extract(frames[cut:], frames[max(0, cut - 3) : cut])
        assert np.array_equal(later.flow, whole.flow[cut:]), cut
        assert np.array_equal(later.motion, whole.motion[cut:]), cut


def test_shifted_grid_cells_and_boxes():
    frames = np.arange(2 * 225 * 360, dtype=np.int64).reshape(2, 225, 360) % 251
    ex = PatchExtractor(PatchConfig(), offset=(15, 30))
    assert (ex.rows, ex.cols) == (4, 7)
    cells = ex.cells(frames)
    assert np.array_equal(cells[1, 8], frames[1, 15 + 45 : 15 + 90, 30 + 45 : 30 + 90])  # row 1, col 1
    assert ex.boxes[8].tolist() == [75, 60, 120, 105]
