"""Growable multilayer perceptrons of constant width.

Notation (docs/methods.md): ``h_0 = a(W_in x + b_in)``, blocks ``h_{t+1} = g_t(h_t)``, head
``y = W_out h_T + b_out``. Locations are numbered along the depth: location 0 is right after the
input layer (state h_0), location k right after block k (state h_k); there are ``n_blocks + 1``.
``insert_block(k, ...)`` puts the new block at location k, i.e. it acts on h_k.

Block kinds: ``BLOCKS`` of :mod:`growth.blocks` (residual, two-weight, dense).

Every network here implements :class:`growth.growable.Growable` (every location has a
:class:`~growth.operators.DenseOperator`) and :class:`growth.growable.Stack` (input layer, blocks,
head: what Forward Thinking and layerwise training need), and ``architecture()``/``from_architecture()``
for :mod:`growth.checkpoint`.
"""
from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn

from .activations import Activation, get_activation
from .blocks import BLOCKS
from .growable import like
from .operators import DenseOperator
from .stream import BlockStream

__all__ = [
    "GrowableMLP", "ResidualMLP", "PlainMLP",
    "freeze", "unfreeze", "set_trainable", "count_parameters",
]

class GrowableMLP(BlockStream):
    """Input layer (+ ``input_activation``), ``n_blocks`` blocks of kind ``block_kind``, linear head.

    Initial blocks get PyTorch's default ``nn.Linear`` initialization (seed with
    ``torch.manual_seed``); inserted blocks get exactly the values passed to :meth:`insert_block`.
    """

    def __init__(self, in_features: int, out_features: int, width: int, n_blocks: int,
                 activation: str = "td", input_activation: Optional[str] = "tanh"):
        super().__init__()
        if min(in_features, out_features, width) < 1 or n_blocks < 0:
            raise ValueError("in_features, out_features, width must be >= 1 and n_blocks >= 0")
        self.in_features, self.out_features, self.width = in_features, out_features, width
        self.activation_name = activation
        self.activation: Activation = get_activation(activation)
        self.input_activation_name = input_activation
        self.input_activation: Activation = get_activation(input_activation)
        self.input_layer = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList()
        for _ in range(n_blocks):
            block = BLOCKS[self.block_kind](width, activation)
            block.apply(_default_init)
            self.blocks.append(block)
        self.head = nn.Linear(width, out_features)

    # -- the stream's parts (growth.stream.BlockStream implements the growable protocol) ----------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_activation(self.input_layer(x))

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)

    def operator(self) -> DenseOperator:
        return DenseOperator(self.width)

    def new_block(self, weight, bias) -> nn.Module:
        return BLOCKS[self.block_kind](self.width, self.activation_name, weight, bias, **like(self))

    def check_block(self, block: nn.Module) -> None:
        if type(block) not in BLOCKS.values():
            raise TypeError(f"block must be one of {sorted(BLOCKS)}, got {type(block).__name__}")
        probe = next(block.parameters())
        if probe.shape[-1] != self.width:
            raise ValueError(f"block width {probe.shape[-1]} does not match network width {self.width}")

    def architecture(self) -> dict:
        """Everything needed to rebuild this (possibly grown) network, as plain JSON data."""
        return {"in_features": self.in_features, "out_features": self.out_features, "width": self.width,
                "activation": self.activation_name, "input_activation": self.input_activation_name,
                "blocks": [b.spec() for b in self.blocks]}

    @classmethod
    def from_architecture(cls, arch: dict) -> "GrowableMLP":
        net = cls(arch["in_features"], arch["out_features"], arch["width"], 0,
                  activation=arch["activation"], input_activation=arch["input_activation"])
        for spec in arch["blocks"]:
            net.blocks.append(BLOCKS[spec["kind"]](arch["width"], spec["activation"]))
        return net

    def extra_repr(self) -> str:
        kinds = [b.kind for b in self.blocks]
        return f"width={self.width}, activation={self.activation_name!r}, blocks={kinds}"


def _default_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        module.reset_parameters()


class ResidualMLP(GrowableMLP):
    """Residual MLP: blocks ``h + σ(W h + b)`` (the authors' architecture for the TD and layerwise methods)."""

    block_kind = "residual"


class PlainMLP(GrowableMLP):
    """Plain MLP without skip connections: blocks ``σ(W h + b)`` (Forward Thinking)."""

    block_kind = "dense"


# -- freezing and counting --------------------------------------------------------------------
def _parameters(items: Iterable) -> list[nn.Parameter]:
    out: list[nn.Parameter] = []
    for item in items:
        out.extend(item.parameters() if isinstance(item, nn.Module) else [item])
    return out


def freeze(*items) -> None:
    """Stop gradients for the given modules/parameters (``requires_grad = False``)."""
    for p in _parameters(items):
        p.requires_grad_(False)


def unfreeze(*items) -> None:
    """Let gradients flow again into the given modules/parameters."""
    for p in _parameters(items):
        p.requires_grad_(True)


def set_trainable(net: nn.Module, items: Iterable) -> list[nn.Parameter]:
    """Make exactly ``items`` (modules or parameters) trainable in ``net``; return them in ``net`` order."""
    chosen = {id(p) for p in _parameters(items)}
    trainable = []
    for p in net.parameters():
        p.requires_grad_(id(p) in chosen)
        if id(p) in chosen:
            trainable.append(p)
    return trainable


def count_parameters(net: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
