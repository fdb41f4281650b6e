from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ognet_video.config import (
    RETIRED,
    Config,
    PatchConfig,
    load_config,
    set_value,
    validate,
)
from ognet_video.errors import UserError
from ognet_video.models.model import resolve_model_config
from ognet_video.models.stored_config import upgrade_checkpoint_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path, text: str):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and "validation error" not in msg and "pydantic" not in msg, msg
    return msg


def test_defaults_without_file():
    cfg = load_config()
    assert cfg == Config()
    assert (cfg.patches.size, cfg.patches.stride, cfg.patches.height, cfg.patches.width) == (29, 29, 232, 348)


def test_defaults_are_the_cpu_recipe_and_its_file_spells_every_value():
    path = CONFIGS / "ped2-cpu.yaml"
    assert load_config(path) == Config()
    raw = yaml.safe_load(path.read_text())
    assert {s: set(v) for s, v in raw.items()} == {s: set(v) for s, v in Config().to_dict().items()}
    cfg = Config()
    assert (cfg.patches.channels, cfg.patches.flow_preset, cfg.train.skip_frames) == ("flow", "medium", [2, 3, 4])
    assert (cfg.train.phase2_norm, cfg.train.phase2_ema) == ("frozen", 0.99)
    assert (cfg.score.aggregate, cfg.score.causal_window, cfg.score.crowd_correction) == ("max", 5, False)
    assert cfg.train.members == 1
    large = load_config(CONFIGS / "ped2-large.yaml")  # the heavier recipe, for more cores or a GPU
    assert (large.patches.size, large.train.members, large.score.crowd_correction) == (45, 2, True)


def test_paper_preset_describes_the_paper_recipe():
    cfg = load_config(CONFIGS / "ped2-paper.yaml")
    resolve_model_config(cfg.model)
    want = {
        "patches": {"size": 45, "height": 225, "width": 360, "stride": 45, "channels": "gray"},
        "model": {"preset": "paper", "g_arch": "paper", "g_channels": [64, 128, 256, 512], "d_norm": "batch"},
        "train": {
            "epochs": 4,
            "noise_std": 0.81,
            "phase2_steps": 75,
            "phase2_lr": 5e-5,
            "skip_frames": [],
            "phase2_norm": "separate",
            "phase2_ema": 0.0,
            "max_patches": 0,
        },  # fmt: skip
        "score": {"aggregate": "max", "causal_window": 9},
    }
    got = cfg.to_dict()
    assert {s: {k: got[s][k] for k in v} for s, v in want.items()} == want
    # the file itself sets every value that differs from the defaults (the preset's widths included)
    raw = yaml.safe_load((CONFIGS / "ped2-paper.yaml").read_text())
    default = Config().to_dict()
    differs = {f"{s}.{k}" for s in got for k in got[s] if got[s][k] != default[s][k]}
    assert differs <= {f"{s}.{k}" for s in raw for k in raw[s]}


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
    cfg = load_config(None, ["train.lr_g=1e-3", "patches.motion_threshold=4", "patches.channels=gray",
                             "train.skip_frames=[]", "train.epochs=5.0"])  # fmt: skip
    assert cfg.train.lr_g == pytest.approx(1e-3) and isinstance(cfg.train.lr_g, float)  # YAML reads 1e-3 as a string
    assert cfg.patches.motion_threshold == 4.0 and isinstance(cfg.patches.motion_threshold, float)
    assert cfg.patches.channels == "gray" and cfg.train.skip_frames == []
    assert cfg.train.epochs == 5 and type(cfg.train.epochs) is int


def test_rules_between_settings_are_checked_once_all_values_are_in():
    # each override alone breaks a rule with the defaults; together, in either order, they are fine
    for order in (1, -1):
        cfg = load_config(None, ["patches.channels=gray", "train.skip_frames=[]"][::order])
        assert cfg.patches.channels == "gray"
        cfg = load_config(None, ["train.max_patches=16", "train.batch_size=8"][::order])
        assert cfg.train.max_patches == 16


def test_shipped_presets_load():
    presets = sorted(CONFIGS.glob("*.yaml"))
    assert {p.name for p in presets} == {"ped2-cpu.yaml", "ped2-large.yaml", "ped2-paper.yaml", "objects.yaml"}
    for preset in presets:
        load_config(preset)


def test_preset_comments_point_inside_the_repository():
    for preset in CONFIGS.glob("*.yaml"):
        text = preset.read_text().lower()
        assert "readme" not in text and "issue" not in text and "session" not in text and "/tmp" not in text


def test_config_dict_round_trip():
    cfg = load_config(None, ["train.epochs=9", "model.preset=custom", "model.g_channels=[1,2,3,4]"])
    assert Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["train.epochz=3"], "unknown setting 'train.epochz'; did you mean train.epochs?"),
        (["trian.epochs=3"], "unknown section 'trian'"),
        (["epochs=3"], "section.key"),
        (["train.epochs.x=3"], "section.key"),
        (["train.epochs"], "section.key=value"),
    ],
)
def test_unknown_or_malformed_override_is_user_error(overrides, needle):
    with pytest.raises(UserError) as err:
        load_config(None, overrides)
    assert needle in one_line(err)


@pytest.mark.parametrize(
    "key",
    [
        "train.grid_offsets",
        "train.rigid_twins",
        "train.mirror",
        "train.phase1_ema",
        "train.skip_weight",
        "patches.flow_step",
        "patches.diff_gain",
        "score.output",
    ],  # fmt: skip
)
def test_removed_options_are_unknown(key):
    assert key in RETIRED
    with pytest.raises(UserError) as err:
        load_config(None, [f"{key}=1"])
    assert one_line(err).startswith(f"override: unknown setting {key!r}")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("train:\n  epochz: 3\n", "unknown setting 'train.epochz'"),
        ("trainer:\n  epochs: 3\n", "unknown section 'trainer'"),
        ("train: 3\n", "section 'train' must be a mapping"),
        ("- a\n- b\n", "expected a mapping of sections"),
    ],
)
def test_unknown_key_in_yaml_is_user_error(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_config(path)
    msg = one_line(err)
    assert msg.startswith(str(path)) and needle in msg


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("train.epochs=abc", "valid integer"),
        ("train.epochs=2.5", "fractional part"),
        ("train.epochs=true", "not true/false"),
        ("train.lr_g=fast", "valid number"),
        ("train.lr_g=0", "greater than 0"),
        ("train.lr_d=.nan", "finite number"),
        ("model.g_channels=abc", "valid list"),
        ("model.g_channels=5", "valid list"),
        ("model.g_channels=[4,8,8]", "exactly 4"),
        ("model.d_channels=[4,8,0,8]", "item 2 must be greater than 0"),
        ("model.preset=tiny", "'cpu', 'paper' or 'custom'"),
        ("model.g_arch=unet", "'paper' or 'strided'"),
        ("model.d_norm=layer", "'batch' or 'none'"),
        ("patches.channels=rgb", "'gray' or 'flow'"),
        ("patches.channels=gray+diff", "'gray' or 'flow'"),
        ("patches.flow_preset=ultrafast", "'fast' or 'medium'"),
        ("patches.flow_preset=full", "'fast' or 'medium'"),
        ("patches.size=4", "greater than or equal to 8"),
        ("patches.size=249", "fit inside height x width"),
        ("patches.size=31", "size % 4 == 1"),
        ("patches.stride=0", "greater than or equal to 1"),
        ("patches.height=5000", "less than or equal to 4096"),
        ("patches.width=0", "greater than or equal to 1"),
        ("patches.motion_threshold=-1", "greater than or equal to 0"),
        ("patches.flow_scale=0", "greater than 0"),
        ("train.epochs=0", "greater than or equal to 1"),
        ("train.batch_size=1", "greater than or equal to 2"),
        ("train.phase2_steps=0", "greater than or equal to 1"),
        ("train.max_patches=10", "at least train.batch_size=64"),
        ("train.holdout_clips=0", "greater than or equal to 1"),
        ("train.members=0", "greater than or equal to 1"),
        ("train.phase2_ema=1", "less than 1"),
        ("train.phase2_ema=-0.1", "greater than or equal to 0"),
        ("train.phase2_norm=joint", "'separate' or 'frozen'"),
        ("train.skip_frames=[1]", "item 0 must be greater than or equal to 2"),
        ("train.skip_frames=3", "valid list"),
        ("train.noise_std=-0.5", "greater than or equal to 0"),
        ("train.num_threads=-1", "greater than or equal to 0"),
        ("score.aggregate=mean", "'max' or 'topk'"),
        ("score.topk=0", "greater than or equal to 1"),
        ("score.causal_window=0", "greater than or equal to 1"),
        ("score.offline_window=0", "greater than or equal to 1"),
        ("score.threshold_percentile=0", "greater than 0"),
        ("score.threshold_percentile=101", "less than or equal to 100"),
        ("score.event_frames=0", "greater than or equal to 1"),
        ("score.batch_frames=0", "greater than or equal to 1"),
    ],
)
def test_bad_value_is_one_line_naming_source_key_value_and_what_is_allowed(override, allowed):
    key, value = override.split("=")
    with pytest.raises(UserError) as err:
        load_config(None, [override])
    msg = one_line(err)
    assert msg.startswith(f"override: {key}="), msg
    assert allowed in msg, msg
    if key not in ("patches.size", "train.max_patches"):  # rules report the value they read
        assert repr(yaml.safe_load(value)) in msg or value in msg, msg


def test_rule_between_sections_names_the_key_it_refuses():
    with pytest.raises(UserError) as err:
        load_config(None, ["patches.channels=gray"])  # the default frame-skip twins need flow
    assert one_line(err) == (
        "override: train.skip_frames=[2, 3, 4]: needs patches.channels=flow (got 'gray'); use [] otherwise"
    )


def test_bad_type_in_yaml_is_user_error(tmp_path):
    path = write(tmp_path, "train:\n  batch_size: big\n")
    with pytest.raises(UserError) as err:
        load_config(path)
    assert (
        one_line(err)
        == f"{path}: train.batch_size='big': must be a valid integer, unable to parse string as an integer"
    )


def test_error_blames_the_override_over_the_file(tmp_path):
    path = write(tmp_path, "patches:\n  channels: gray\ntrain:\n  skip_frames: []\n")
    assert load_config(path).patches.channels == "gray"
    with pytest.raises(UserError) as err:
        load_config(path, ["train.skip_frames=[2]"])
    assert one_line(err).startswith("override: train.skip_frames=[2]")
    with pytest.raises(UserError) as err:
        load_config(write(tmp_path, "patches:\n  channels: gray\n"))
    assert one_line(err).startswith(f"{tmp_path / 'cfg.yaml'}: train.skip_frames")


def test_missing_or_invalid_yaml_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="YAML"):
        load_config(write(tmp_path, "train: [unclosed\n"))


@pytest.mark.parametrize("override", ["model.g_channels=[4,8", "score.aggregate=@x"])
def test_override_with_invalid_yaml_value_is_user_error(override):
    with pytest.raises(UserError, match=r"value is not valid YAML"):
        load_config(None, [override])


def test_assignment_is_validated():
    cfg = Config()
    cfg.train.epochs = 8
    assert cfg.train.epochs == 8
    with pytest.raises(ValidationError):
        cfg.train.epochs = 0
    with pytest.raises(ValidationError):
        cfg.patches.channels = "gray+diff"
    with pytest.raises(ValidationError):
        cfg.train.grid_offsets = [0, 15]
    assert PatchConfig(size=45, height=225, width=360, stride=45).size == 45


def test_set_value_checks_and_keeps_the_old_value_on_error():
    cfg = Config()
    set_value(cfg, "train.epochs", 7)
    assert cfg.train.epochs == 7
    with pytest.raises(UserError) as err:
        set_value(cfg, "train.max_patches", 10, "my.yaml")  # a rule of its section
    assert one_line(err).startswith("my.yaml: train.max_patches=10:")
    assert cfg.train.max_patches == 16000
    with pytest.raises(UserError, match="unknown setting 'train.mirror'"):
        set_value(cfg, "train.mirror", 0.5)
    with pytest.raises(UserError, match="section.key"):
        set_value(cfg, "epochs", 3)


def test_validate_checks_rules_between_sections_after_assignment():
    cfg = Config()
    cfg.patches.channels = "gray"  # valid for its section, but the default frame-skip twins need flow
    with pytest.raises(UserError) as err:
        validate(cfg)
    assert "train.skip_frames" in one_line(err)
    cfg.train.skip_frames = []
    validate(cfg)


def test_named_preset_decides_the_generator_for_the_size_rule():
    # the paper generator takes any size; a strided one (the cpu preset's) needs size % 4 == 1
    load_config(None, ["model.preset=paper", "model.g_arch=strided", "patches.size=32", "patches.stride=32"])
    with pytest.raises(UserError, match="size % 4 == 1"):
        load_config(None, ["model.preset=cpu", "model.g_arch=paper", "patches.size=32", "patches.stride=32"])
    load_config(None, ["model.preset=custom", "model.g_arch=paper", "patches.size=32", "patches.stride=32"])


def test_checkpoint_config_of_an_older_version_is_upgraded():
    old = Config().to_dict()
    old["patches"].update(flow_step=1, diff_gain=1.0)
    old["train"].update(grid_offsets=[], rigid_twins=0.5, mirror=0.0, phase1_ema=0.0, skip_weight=1.0)
    old["score"]["output"] = "logit"
    assert Config.from_dict(upgrade_checkpoint_config(old, "m.safetensors")) == Config()
    before_ensembles = Config().to_dict()
    del before_ensembles["train"]["members"]  # one pair then; resuming it must not start a second
    assert Config.from_dict(upgrade_checkpoint_config(before_ensembles, "m")).train.members == 1
    gray = load_config(None, ["patches.channels=gray", "train.skip_frames=[]"]).to_dict()
    gray["patches"]["flow_preset"] = "ultrafast"  # the old default, unused by a gray model
    assert Config.from_dict(upgrade_checkpoint_config(gray, "m")).patches.flow_preset == "medium"
    for section, key, value in (("score", "output", "prob"), ("patches", "flow_step", 2)):
        bad = Config().to_dict()
        bad[section][key] = value
        with pytest.raises(UserError) as err:
            upgrade_checkpoint_config(bad, "m.safetensors")
        assert one_line(err).startswith(f"m.safetensors: {section}.{key}={value!r}") and "retrain" in str(err.value)
    with pytest.raises(UserError) as err:
        Config.from_dict({**Config().to_dict(), "extra": {}}, source="m.safetensors")
    assert one_line(err) == "m.safetensors: unknown section 'extra'; use patches, model, train, score, health, objects"
