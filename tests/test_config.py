from __future__ import annotations

import pytest

from ognet_video.config import Config, load_config
from ognet_video.errors import UserError


def write(tmp_path, text: str):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_without_file():
    cfg = load_config()
    assert cfg == Config()
    assert (cfg.patches.size, cfg.patches.height, cfg.patches.width) == (45, 225, 360)


def test_yaml_then_overrides_precedence(tmp_path):
    path = write(
        tmp_path,
        "patches:\n  motion_threshold: 3.5\nmodel:\n  preset: custom\n  g_channels: [4, 8, 8, 8]\n"
        "train:\n  epochs: 7\n  seed: 5\n",
    )
    cfg = load_config(path, ["train.epochs=3", "model.d_channels=[2,4,6,8]", "train.seed=9", "train.seed=11"])
    assert cfg.train.epochs == 3  # override beats the file
    assert cfg.train.seed == 11  # the last override wins
    assert cfg.patches.motion_threshold == 3.5  # file beats the default
    assert cfg.model.preset == "custom"
    assert cfg.model.g_channels == [4, 8, 8, 8]
    assert cfg.model.d_channels == [2, 4, 6, 8]
    assert all(type(v) is int for v in cfg.model.d_channels)
    assert cfg.train.lr_g == Config().train.lr_g  # untouched keys keep their defaults
    assert isinstance(cfg.patches.motion_threshold, float)


def test_override_value_types_are_coerced():
    cfg = load_config(None, ["train.lr_g=1e-3", "patches.motion_threshold=4", "patches.channels=gray+diff"])
    assert cfg.train.lr_g == pytest.approx(1e-3) and isinstance(cfg.train.lr_g, float)
    assert cfg.patches.motion_threshold == 4.0 and isinstance(cfg.patches.motion_threshold, float)
    assert cfg.patches.channels == "gray+diff"


def test_shipped_presets_load():
    from pathlib import Path

    presets = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    if not presets:
        pytest.skip("configs/ not present")
    for preset in presets:
        load_config(preset)
    default = load_config(presets[0].with_name("ped2-cpu.yaml"))
    assert default.model.preset == "cpu" and default.patches.channels == "flow"


def test_config_dict_round_trip():
    cfg = load_config(None, ["train.epochs=9", "model.preset=custom", "model.g_channels=[1,2,3,4]"])
    assert Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "overrides",
    [["train.epochz=3"], ["trian.epochs=3"], ["epochs=3"], ["train.epochs.x=3"], ["train.epochs"]],
)
def test_unknown_or_malformed_override_is_user_error(overrides):
    with pytest.raises(UserError):
        load_config(None, overrides)


@pytest.mark.parametrize(
    "text",
    ["train:\n  epochz: 3\n", "trainer:\n  epochs: 3\n", "train: 3\n", "- a\n- b\n"],
)
def test_unknown_key_in_yaml_is_user_error(tmp_path, text):
    with pytest.raises(UserError):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.epochs=abc"],
        ["train.lr_g=fast"],
        ["model.g_channels=abc"],
        ["model.g_channels=5"],
        ["model.g_channels=[4,8,8]"],
        ["score.output=softmax"],
        ["patches.channels=rgb"],
        ["train.epochs=0"],
        ["patches.size=4"],
    ],
)
def test_bad_value_is_user_error(overrides):
    with pytest.raises(UserError):
        load_config(None, overrides)


def test_bad_type_in_yaml_is_user_error(tmp_path):
    with pytest.raises(UserError, match="train.batch_size"):
        load_config(write(tmp_path, "train:\n  batch_size: big\n"))


def test_missing_or_invalid_yaml_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="YAML"):
        load_config(write(tmp_path, "train: [unclosed\n"))


@pytest.mark.parametrize("override", ["model.g_channels=[4,8", "score.output=@x"])
def test_override_with_invalid_yaml_value_is_user_error(override):
    with pytest.raises(UserError):
        load_config(None, [override])


def test_fractional_value_for_int_setting_is_user_error():
    with pytest.raises(UserError):
        load_config(None, ["train.epochs=2.5"])
