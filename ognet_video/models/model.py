"""OGNet's generator G (denoising autoencoder) and discriminator D.

D returns a *logit*, which is the patch score; the paper's sigmoid is applied only by the loss
(``BCEWithLogits``). Label convention: 0 = good/normal, 1 = bad/anomalous, so a higher D output means
"more anomalous".
"""

from __future__ import annotations

import torch
from torch import nn

from ognet_video.config import MODEL_PRESETS, Config, ModelConfig
from ognet_video.patches import input_planes

PRESETS: dict[str, dict] = MODEL_PRESETS


def in_channels(cfg: Config) -> int:
    """Input planes: one for "gray", two for "flow" (x and y)."""
    return input_planes(cfg.patches.channels)


class Generator(nn.Module):
    """Denoising autoencoder G.

    ``arch="paper"``: fully convolutional, kernel 5, stride 1, no padding (45 -> 29 -> 45), layer order
    as in the authors' code. ``arch="strided"`` (the CPU preset): same kernel and norm layout, but two
    stride-2 stages (45 -> 23 -> 12 -> 23 -> 45), which cuts the cost per patch about tenfold.
    """

    def __init__(self, widths: list[int], channels: int = 1, arch: str = "paper") -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        if arch == "paper":
            enc = [(channels, w1, 5, 1, 0), (w1, w2, 5, 1, 0), (w2, w3, 5, 1, 0), (w3, w4, 5, 1, 0)]
            dec = [(w4, w3, 5, 1, 0), (w3, w2, 5, 1, 0), (w2, w1, 5, 1, 0), (w1, channels, 5, 1, 0)]
        else:
            enc = [(channels, w1, 5, 1, 2), (w1, w2, 5, 2, 2), (w2, w3, 5, 2, 2), (w3, w4, 3, 1, 1)]
            dec = [(w4, w3, 3, 1, 1), (w3, w2, 5, 2, 2), (w2, w1, 5, 2, 2), (w1, channels, 5, 1, 2)]
        layers: list[nn.Module] = []
        for i, (cin, cout, k, s, p) in enumerate(enc):
            conv = nn.Conv2d(cin, cout, k, stride=s, padding=p)
            # the authors put ReLU before BN in the last two encoder stages
            layers += (
                [conv, nn.BatchNorm2d(cout), nn.ReLU(True)] if i < 2 else [conv, nn.ReLU(True), nn.BatchNorm2d(cout)]
            )
        self.encoder = nn.Sequential(*layers)
        layers = []
        for i, (cin, cout, k, s, p) in enumerate(dec):
            if arch == "paper":
                layers.append(nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p))
            else:  # stride-1 stages as plain convs: same function, far faster on CPU than ConvTranspose
                conv_t = nn.ConvTranspose2d if s > 1 else nn.Conv2d
                layers.append(conv_t(cin, cout, k, stride=s, padding=p))
            layers += [nn.BatchNorm2d(cout), nn.ReLU(True)] if i < 3 else [nn.Tanh()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class Discriminator(nn.Module):
    """Conv k5 s2 p2 x4 (45 -> 23 -> 12 -> 6 -> 3), then one linear unit (a logit)."""

    def __init__(self, widths: list[int], channels: int = 1, patch: int = 45, norm: str = "batch") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev, size = channels, patch
        for i, w in enumerate(widths):
            layers.append(nn.Conv2d(prev, w, 5, stride=2, padding=2))
            if i < 3 and norm == "batch":
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.ReLU(True))
            prev, size = w, (size + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(prev * size * size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


def resolve_model_config(mc: ModelConfig) -> ModelConfig:
    """A named preset fixes the architecture; ``custom`` keeps whatever the config says."""
    if mc.preset in PRESETS:
        mc.g_arch = PRESETS[mc.preset]["g_arch"]
        mc.g_channels = list(PRESETS[mc.preset]["g_channels"])
        mc.d_channels = list(PRESETS[mc.preset]["d_channels"])
    return mc


def build_models(cfg: Config) -> tuple[Generator, Discriminator]:
    mc = cfg.model
    c = in_channels(cfg)
    return (
        Generator(mc.g_channels, c, mc.g_arch),
        Discriminator(mc.d_channels, c, cfg.patches.size, mc.d_norm),
    )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
