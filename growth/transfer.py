"""Transfer learning into a frozen pretrained network, through the ordinary trainer and strategies.

A network trained on a *source* task is adapted to a *target* task by training only what is added
to it (and, as an option, its head); every pretrained parameter stays fixed bit for bit:

* :func:`freeze_base` freezes every parameter of the pretrained network (``requires_grad = False``),
  leaves its head trainable when asked, and can replace the head by a freshly initialized one (new
  output classes: the only change that does not preserve the function);
* :class:`FrozenBase` wraps any :class:`~growth.trainer.Strategy` (topological derivative, random
  insertion, the fixed baseline, ...) and changes one thing: the trainable set of every stage is
  *what is not frozen*, i.e. the blocks the strategy inserted (new modules are created trainable)
  plus the head if it was left trainable. Growth, ε line search, stopping and logging are the inner
  strategy's and the trainer's, unchanged. The rule is carried by the ``requires_grad`` flags, so it
  survives a checkpoint (:mod:`growth.checkpoint` records the frozen parameter names) and resumes;
* :func:`add_low_rank_adapters` is the standard parameter-efficient baseline (LoRA, Hu et al. 2021):
  every frozen ``nn.Linear`` ``y = W x + b`` becomes ``y = W x + b + (α/r) B A x`` with trainable
  ``A`` (r × in) and ``B`` (out × r). ``B = 0`` at the start, so the adapted network *is* the
  pretrained one; :class:`LowRankAdapted` holds the result so that it saves and loads like any
  growth network.

Function preservation: inserting a block of :mod:`growth.topological` at ε = 0 (and any identity
block) or adding adapters leaves the pretrained function unchanged exactly (``h + σ(0) = h``,
``W x + b + 0``); the topological derivative then ranks the locations by the *target* loss, and the
predicted change −(ε²/2)·score of the first insertion holds on the target data as in growth.

Choices (the topological-derivative paper announces transfer learning without details): the
pretrained input layer and blocks are never unfrozen; the head is trainable by default
(``train_head=True``: a linear read-out re-fitted to the target, and required when the classes
change); adapters go on every frozen linear layer except a trainable head, with α = r (scale 1) and
A drawn uniformly in ±1/√in (PyTorch's default range for a linear layer of that fan-in).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .checkpoint import NETWORKS, register_network
from .trainer import Context, Strategy

__all__ = ["freeze_base", "FrozenBase", "LowRankLinear", "LowRankAdapted", "add_low_rank_adapters",
           "trainable_parameters"]


def freeze_base(net: nn.Module, train_head: bool = True, new_head_outputs: Optional[int] = None,
                generator: Optional[torch.Generator] = None) -> nn.Module:
    """Freeze every parameter of the pretrained ``net`` in place and return it.

    ``train_head``: leave ``net.head`` trainable. ``new_head_outputs``: replace the head by a new
    ``nn.Linear(width, new_head_outputs)`` initialized in PyTorch's default range ±1/√width from
    ``generator`` (new classes); a new head is always trainable.
    """
    for p in net.parameters():
        p.requires_grad_(False)
    if new_head_outputs is not None:
        old = net.head
        head = nn.Linear(old.in_features, new_head_outputs, dtype=old.weight.dtype, device=old.weight.device)
        bound = 1.0 / math.sqrt(old.in_features)
        with torch.no_grad():
            for p in head.parameters():
                draw = torch.rand(p.shape, generator=generator, dtype=torch.float64)
                p.copy_((2 * draw - 1) * bound)
        net.head = head
        if hasattr(net, "out_features"):
            net.out_features = new_head_outputs
    elif train_head:
        net.head.requires_grad_(True)
    return net


def trainable_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``net`` that are not frozen, in ``net`` order."""
    return [p for p in net.parameters() if p.requires_grad]


class FrozenBase(Strategy):
    """``inner`` with the trainable set "everything not frozen by :func:`freeze_base`": the blocks
    ``inner`` inserts (and adapters added before training) plus the head where it was left
    trainable. Every other call goes to ``inner`` unchanged."""

    def __init__(self, inner: Strategy):
        self.inner = inner
        self.name = inner.name

    def check(self, net: nn.Module) -> None:
        self.inner.check(net)
        if not trainable_parameters(net):
            raise ValueError("nothing to train: freeze_base left no trainable parameter (train the head, "
                             "or insert a block or adapters before training)")

    def trainable(self, net: nn.Module, ctx: Context) -> list[nn.Parameter]:
        return trainable_parameters(net)

    def forward(self, net, inputs, ctx):
        return self.inner.forward(net, inputs, ctx)

    def penalty(self, net, inputs, targets, outputs, ctx):
        return self.inner.penalty(net, inputs, targets, outputs, ctx)

    def end_stage(self, net, ctx):
        return self.inner.end_stage(net, ctx)

    def should_stop(self, net, ctx):
        return self.inner.should_stop(net, ctx)

    def grow(self, net, ctx):
        return self.inner.grow(net, ctx)

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


class LowRankLinear(nn.Module):
    """``y = W x + b + (α/r) B (A x)`` around a frozen ``nn.Linear`` (W, b); A (r × in), B (out × r).

    ``B = 0`` initially (the wrapped layer exactly); A uniform in ±1/√in from ``generator``.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: Optional[float] = None,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.base, self.rank = base, rank
        self.alpha = float(rank if alpha is None else alpha)
        base.requires_grad_(False)
        ref = base.weight
        draw = torch.rand((rank, base.in_features), generator=generator, dtype=torch.float64)
        self.down = nn.Parameter(((2 * draw - 1) / math.sqrt(base.in_features)).to(ref))
        self.up = nn.Parameter(torch.zeros(base.out_features, rank, dtype=ref.dtype, device=ref.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.alpha / self.rank) * ((x @ self.down.T) @ self.up.T)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


class LowRankAdapted(nn.Module):
    """A growth network whose linear layers ``layers`` (dotted names) carry :class:`LowRankLinear`
    adapters; forwards like the network (``location_hook`` included) and saves with
    :func:`growth.save`."""

    def __init__(self, net: nn.Module, layers: list[str], rank: int, alpha: Optional[float] = None,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        for name in layers:
            _set_module(net, name, LowRankLinear(net.get_submodule(name), rank, alpha, generator))
        self.net, self.layers, self.rank = net, list(layers), rank
        self.alpha = float(rank if alpha is None else alpha)

    def forward(self, x: torch.Tensor, location_hook=None) -> torch.Tensor:
        return self.net(x, location_hook=location_hook)

    # -- the growable protocol, delegated to the adapted network ----------------------------------
    @property
    def n_blocks(self) -> int:
        return self.net.n_blocks

    @property
    def activation(self):
        return self.net.activation

    @property
    def block_kind(self) -> str:
        return self.net.block_kind

    def locations(self):
        return self.net.locations()

    def insert_block(self, location: int, block: nn.Module) -> nn.Module:
        return self.net.insert_block(location, block=block)

    def remove_block(self, location: int) -> nn.Module:
        return self.net.remove_block(location)

    def reference_parameter(self) -> torch.Tensor:
        return self.net.reference_parameter()

    @property
    def head(self) -> nn.Module:
        return self.net.head

    def architecture(self) -> dict:
        return {"class": type(self.net).__name__, "net": self.net.architecture(), "layers": self.layers,
                "rank": self.rank, "alpha": self.alpha}

    @classmethod
    def from_architecture(cls, arch: dict) -> "LowRankAdapted":
        return cls(NETWORKS[arch["class"]].from_architecture(arch["net"]), arch["layers"], arch["rank"],
                   arch["alpha"])


register_network(LowRankAdapted)


def add_low_rank_adapters(net: nn.Module, rank: int, alpha: Optional[float] = None,
                          generator: Optional[torch.Generator] = None) -> LowRankAdapted:
    """Put a rank-``rank`` adapter on every *frozen* ``nn.Linear`` of ``net`` (call after
    :func:`freeze_base`; a trainable head is trained in full instead) and return the adapted network,
    which computes exactly the same function as ``net`` until the adapters are trained."""
    layers = [name for name, m in net.named_modules()
              if isinstance(m, nn.Linear) and not any(p.requires_grad for p in m.parameters())]
    return LowRankAdapted(net, layers, rank, alpha, generator)
