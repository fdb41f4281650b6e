from __future__ import annotations

import pytest
import torch

from ognet_video.config import load_config
from ognet_video.errors import UserError
from ognet_video.models.model import PRESETS, build_models, count_parameters, in_channels, resolve_model_config

GRAY45 = ["patches.channels=gray", "train.skip_frames=[]", "patches.size=45", "patches.height=225",
          "patches.width=360", "patches.stride=45"]  # fmt: skip


def models_for(*overrides: str):
    cfg = load_config(None, list(overrides))
    resolve_model_config(cfg.model)
    G, D = build_models(cfg)
    return cfg, G.eval(), D.eval()


@pytest.mark.parametrize("preset", ["paper", "cpu"])
@pytest.mark.parametrize("channels", ["gray", "flow"])
def test_output_shapes(preset, channels):
    torch.manual_seed(0)  # an untrained D gives one constant logit for a few percent of random inits
    extra = ["train.skip_frames=[]"] if channels == "gray" else []
    cfg, G, D = models_for(f"model.preset={preset}", f"patches.channels={channels}", *extra)
    c, s = in_channels(cfg), cfg.patches.size
    assert c == (2 if channels == "flow" else 1)
    x = torch.rand(3, c, s, s) * 2 - 1
    with torch.no_grad():
        y = G(x)
        logits = D(y)
    assert y.shape == (3, c, s, s)
    assert y.abs().max() <= 1.0  # tanh output, same range as the input
    assert logits.shape == (3,)  # one logit per patch
    # logits depend on the patch: not one constant per batch
    assert not torch.allclose(logits, logits[0].expand(3))


def test_paper_preset_parameter_counts():
    _, G, D = models_for("model.preset=paper", *GRAY45)
    assert count_parameters(G) == pytest.approx(8.6e6, rel=0.05)
    assert count_parameters(D) == pytest.approx(4.3e6, rel=0.05)


def test_cpu_preset_is_much_lighter_than_paper():
    _, Gp, Dp = models_for("model.preset=paper", *GRAY45)
    _, Gc, Dc = models_for("model.preset=cpu", *GRAY45)
    assert count_parameters(Gc) < count_parameters(Gp) / 10
    assert count_parameters(Dc) < count_parameters(Dp) / 10


def test_named_preset_overrides_widths_custom_keeps_them():
    cfg = load_config(None, ["model.preset=paper", "model.g_channels=[1,2,3,4]", "model.g_arch=strided"])
    resolve_model_config(cfg.model)
    assert cfg.model.g_channels == PRESETS["paper"]["g_channels"]
    assert cfg.model.g_arch == "paper"
    cfg = load_config(None, ["model.preset=custom", "model.g_channels=[1,2,3,4]", "model.g_arch=strided"])
    resolve_model_config(cfg.model)
    assert cfg.model.g_channels == [1, 2, 3, 4] and cfg.model.g_arch == "strided"


def test_discriminator_without_batchnorm():
    _, _, D = models_for("model.preset=custom", "model.d_channels=[4,8,8,8]", "model.d_norm=none", *GRAY45)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert D(torch.zeros(2, 1, 45, 45)).shape == (2,)


def size_overrides(arch: str, size: int) -> list[str]:
    return ["model.preset=custom", f"model.g_arch={arch}", "model.g_channels=[4,8,8,8]", "model.d_channels=[4,8,8,8]",
            f"patches.size={size}", f"patches.stride={size}", "patches.channels=gray", "train.skip_frames=[]"]  # fmt: skip


@pytest.mark.parametrize(
    ("arch", "size"),
    [("strided", 29), ("strided", 33), ("strided", 45), ("paper", 32), ("paper", 45), ("paper", 48)],
)
def test_generator_reproduces_every_accepted_patch_size(arch, size):
    G, D = build_models(load_config(None, size_overrides(arch, size)))
    x = torch.zeros(2, 1, size, size)
    with torch.no_grad():
        assert G.eval()(x).shape == x.shape
        assert D.eval()(x).shape == (2,)


@pytest.mark.parametrize("size", [32, 48])
def test_strided_generator_refuses_sizes_it_cannot_reproduce_up_front(size):
    """The strided generator gives back a smaller patch unless size % 4 == 1, so the config refuses such a size
    before any training rather than let G(x) and x differ in shape."""
    with pytest.raises(UserError, match=rf"patches\.size={size}: the strided generator needs size % 4 == 1"):
        load_config(None, size_overrides("strided", size))
    cfg = load_config(None, size_overrides("strided", 33))
    cfg.__dict__["patches"] = cfg.patches.model_copy(update={"size": size, "stride": size})  # past the check
    G, _ = build_models(cfg)
    with torch.no_grad():
        assert G.eval()(torch.zeros(1, 1, size, size)).shape[-1] == size - 3  # what the check keeps from training
