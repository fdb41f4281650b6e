"""Training on several processes under torchrun: the process group, this process's rank, and the few collectives
training needs (gradient and buffer averages, a value decided by rank 0, an error seen by any rank).

torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) switches it on; without it, or with
``WORLD_SIZE=1``, ``World()`` is a single process and every helper is a no-op, so the one-process run is unchanged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ognet_video.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``size`` 1: alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""
    device: str = "cpu"  # where the small tensors of a collective live (nccl: this rank's GPU)

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints and writes the run folder."""
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This rank's share of a batch of ``n`` (a multiple of ``size``): rank r takes the r-th n/size rows."""
        k = n // self.size
        return slice(self.rank * k, (self.rank + 1) * k)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def _average(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor by its mean over the ranks, in one all-reduce (identical bytes on every rank)."""
        if not self.active or not tensors:
            return
        flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for t in tensors:
            t.detach().copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()

    def average_grads(self, module: torch.nn.Module) -> None:
        """Mean of each parameter's gradient over the ranks: the gradient of the loss over the global batch."""
        self._average([p.grad for p in module.parameters() if p.grad is not None])

    def average_buffers(self, module: torch.nn.Module) -> None:
        """Mean of the floating buffers (BatchNorm running statistics) over the ranks. They are updated linearly
        from batch statistics, so averaging them once before they are used or saved equals averaging every step."""
        self._average([b for b in module.buffers() if b.is_floating_point()])

    def mean(self, values: list[float]) -> list[float]:
        """Each number's mean over the ranks (alone: ``values`` unchanged)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.size).tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only, its result (picklable) given to every rank; a UserError there is raised
        on every rank (printed by rank 0 alone, whose console is the only one shown)."""
        if not self.active:
            return fn()
        box: list[Any] = [None]
        error: UserError | None = None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except UserError as exc:
                error, box[0] = exc, ("error", str(exc))
        dist.broadcast_object_list(box, src=0)
        if error is not None:
            raise error
        kind, value = box[0]
        if kind == "error":
            raise UserError(value)
        return value

    @contextmanager
    def together(self) -> Iterator[None]:
        """A block every rank runs (set-up checks, its share of the patches): when it fails on any rank, it fails
        on all of them, so that none waits for the others in a later collective. Rank 0 raises the error of the
        first rank that failed (its own one first), so that the one console shown says what happened."""
        error: BaseException | None = None
        try:
            yield
        except Exception as exc:
            error = exc
        if self.active:
            seen = self.gather(None if error is None else f"{type(error).__name__}: {error}")
            failed = [(r, msg) for r, msg in enumerate(seen) if msg is not None]
            if error is None and failed:
                rank, msg = failed[0]
                raise UserError(f"rank {rank} of {self.size} stopped: {msg}")
        if error is not None:
            raise error


SOLO = World()  # a process alone: the default world of every function that takes one


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over the ranks; its gradient is the sum of the ranks' gradients (every rank's loss
    depends on every rank's input through it)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:  # noqa: ANN401 - torch's context object
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN401
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """BatchNorm over the global batch: in training, the mean and variance of every rank's share together (one
    differentiable all-reduce of the sums of x and x^2), so N processes train the recipe's BatchNorm, not one
    over batch / N patches. torch's SyncBatchNorm does this for GPUs only; this one also runs on gloo. Alone, or
    in eval mode, it is ``BatchNorm2d``; its state dict is the same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        all_reduce = _SumOverRanks.apply
        dtype, x = x.dtype, x.float()  # float32 out, also under bf16 autocast
        c = x.shape[1]
        n = float(x.numel() // c * dist.get_world_size())
        wide = x.double()  # sums of x and x^2 in float64: one all-reduce, and no cancellation in E[x^2] - E[x]^2
        sums = all_reduce(torch.cat([wide.sum(dim=(0, 2, 3)), wide.pow(2).sum(dim=(0, 2, 3))])) / n
        mean64 = sums[:c]
        var = (sums[c:] - mean64.pow(2)).clamp_min(0.0).float()
        mean = mean64.float()
        centred = x - mean[None, :, None, None]
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1.0, 1.0)), alpha=m)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(dtype)


def global_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every ``BatchNorm2d`` made a ``GlobalBatchNorm2d`` (same parameters, buffers and names)."""
    for child in module.children():
        if type(child) is torch.nn.BatchNorm2d:
            child.__class__ = GlobalBatchNorm2d  # the same object: its parameters stay the optimiser's
        else:
            global_batchnorm(child)
    return module


def init(device: torch.device) -> tuple[World, torch.device]:
    """Join torchrun's process group (gloo on a CPU, nccl on CUDA, device ``cuda:LOCAL_RANK``); alone when
    ``WORLD_SIZE`` is unset or 1. Returns the world and the device this process trains on."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    # torch._dynamo (which the first optimiser imports) imports torch.distributed._shard, and that import, made
    # while a process group exists, keeps 10 references to it that destroy_process_group never drops: the group
    # and gloo's threads would then live on into the interpreter's teardown. Imported first, it takes none.
    import torch._dynamo  # noqa: F401

    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UserError(f"process {local} on this machine has no GPU of its own ({torch.cuda.device_count()} "
                            "found): start at most one process per GPU (torchrun --nproc-per-node)")  # fmt: skip
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return World(rank, size, local, dist.get_backend(), str(device)), device


def is_main_process() -> bool:
    """Rank 0 or alone, from torchrun's environment (before or without ``init``)."""
    return int(os.environ.get("RANK", "0")) == 0


def close(world: World) -> None:
    """Leave the process group (after this rank's last collective; a no-op alone or when already left).

    The group is destroyed here, while the interpreter is whole: gloo's worker and transport threads are joined
    now. Left to the interpreter's teardown, they outlive the objects they use, and a rank can abort after its
    work is done (``terminate called without an active exception``). No barrier: the last collective
    (the digests' gather) already met every rank, and rank 0 still calibrates for minutes after it."""
    if world.active and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def joined(device: torch.device) -> Iterator[tuple[World, torch.device]]:
    """``init``, and ``close`` on every way out of the block: its end, an error (a user's included), Ctrl-C and
    SIGTERM (``Terminated``). An error raised in a collective (another rank stopped) leaves the same way."""
    world, device = init(device)
    try:
        yield world, device
    finally:
        close(world)


def is_dist_error(exc: BaseException) -> bool:
    """A collective that failed because another rank stopped (its own message is on its console)."""
    return isinstance(exc, dist.DistError) or (isinstance(exc, RuntimeError) and "gloo" in str(exc).lower())


def digest(*modules: torch.nn.Module) -> str:
    """sha256 of the modules' parameters and buffers: equal on every rank when they trained in step."""
    h = hashlib.sha256()
    for m in modules:
        for k, v in m.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
