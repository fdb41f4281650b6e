"""The resumable state of a training run: what ``last.safetensors`` holds, and its check on resume.

A kill at any moment loses at most the epoch in progress: ``train`` writes the members finished so far and the
current member's networks, optimizers and RNG after each epoch, and in phase two every
``PHASE2_CHECKPOINT_EVERY`` steps (its D, D after phase one, optimizer, weight average and losses too), and
``--resume`` reads them back only when the config and the data are the run's own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ognet_video.config import Config
from ognet_video.errors import UserError
from ognet_video.models.checkpoint import (
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    prefixed,
    unprefixed,
)
from ognet_video.models.model import Discriminator, Generator, build_models


def state_tensors(G, D, G_old, opt_g, opt_d) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:  # noqa: ANN001
    """What ``last.safetensors`` holds mid-member: the networks, G_old in phase two, both optimizers, the RNG."""
    t = {**prefixed(G.state_dict(), "G"), **prefixed(D.state_dict(), "D")}
    if G_old is not None:
        t.update(prefixed(G_old.state_dict(), "G_old"))
    og, gg = optimizer_to_tensors(opt_g, "opt_g")
    od, gd = optimizer_to_tensors(opt_d, "opt_d")
    t.update(og)
    t.update(od)
    t["rng.torch"] = torch.get_rng_state()
    return t, {"opt_g_groups": gg, "opt_d_groups": gd}


PHASE2_CHECKPOINT_EVERY = 50  # phase-two steps between checkpoints: a stop loses at most these


def phase_two_tensors(D1: torch.nn.Module, opt2: torch.optim.Optimizer, d_avg: torch.nn.Module | None,
                      done: int, losses: list[float]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:  # fmt: skip
    """What phase two adds to ``state_tensors`` mid-phase: D after phase one, its optimizer, the weight average
    and how far it got (steps done, the losses so far)."""
    t = prefixed(D1.state_dict(), "D1")
    o2, g2 = optimizer_to_tensors(opt2, "opt2")
    t.update(o2)
    if d_avg is not None:
        t.update(prefixed(d_avg.state_dict(), "d_avg"))
    return t, {"phase2_done": done, "phase2_losses": losses, "opt2_groups": g2}


def load_phase_two(tensors: dict[str, torch.Tensor], meta: dict[str, Any], D1: torch.nn.Module,
                   opt2: torch.optim.Optimizer, d_avg: torch.nn.Module | None) -> tuple[int, list[float]]:  # fmt: skip
    """Restore what ``phase_two_tensors`` saved; (steps done, losses so far), or (0, []) before phase two."""
    if "phase2_done" not in meta:
        return 0, []
    D1.load_state_dict(unprefixed(tensors, "D1"))
    optimizer_from_tensors(opt2, tensors, "opt2", meta["opt2_groups"])
    if d_avg is not None:
        d_avg.load_state_dict(unprefixed(tensors, "d_avg"))
    return int(meta["phase2_done"]), [float(x) for x in meta["phase2_losses"]]


@dataclass
class Finished:
    """A trained member: G_n, D after phase two, and D after phase one (for the phase-one reference)."""

    G: Generator
    D: Discriminator
    D1: Discriminator

    def tensors(self, i: int) -> dict[str, torch.Tensor]:
        return {**prefixed(self.G.state_dict(), f"done{i}.G"), **prefixed(self.D.state_dict(), f"done{i}.D"),
                **prefixed(self.D1.state_dict(), f"done{i}.D1")}  # fmt: skip

    @classmethod
    def from_tensors(cls, cfg: Config, tensors: dict[str, torch.Tensor], i: int) -> Finished:
        G, D = build_models(cfg)
        D1 = copy.deepcopy(D)
        for m, name in ((G, "G"), (D, "D"), (D1, "D1")):
            m.load_state_dict(unprefixed(tensors, f"done{i}.{name}"))
        return cls(G, D, D1)


def resume_state(cfg: Config, last: Path, data_id: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``last.safetensors``, checked against this run's config and data (every rank reads the same file)."""
    state = load_checkpoint(last)
    if state[1]["config"] != cfg.to_dict():
        raise UserError(
            f"{last.parent} was trained with a different config; resume without overrides or start a new run"
        )
    if state[1].get("data", data_id) != data_id:
        raise UserError(
            f"{last.parent} was trained on other data ({state[1]['data']['dataset']}, "
            f"{len(state[1]['data']['clips'])} training clips); resume with the same --data or start a new run"
        )
    return state
