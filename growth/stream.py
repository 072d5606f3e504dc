"""A residual stream of blocks between an embedding and a head: the shared body of the growth networks.

``h_0 = embed(x)``, ``h_k = block_k(h_{k−1})``, ``y = readout(h_T)``. Location k is the state h_k
(k = 0..T), every location has the same state shape and insertion operator, and
``insert_block(k, ...)`` puts the new block right after location k (it acts on h_k). Subclasses
(:class:`~growth.networks.GrowableMLP`, :class:`~growth.cnn.ResidualCNN`,
:class:`~growth.vit.VisionTransformer`) define ``embed``, ``readout``, ``operator`` and
``architecture``; this class implements :class:`growth.growable.Growable` for all of them.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .activations import Activation
from .growable import Location, LocationHook, like
from .operators import InsertionOperator

__all__ = ["BlockStream"]


class BlockStream(nn.Module):
    """Base class: ``blocks`` (an ``nn.ModuleList``), ``head`` (its weight is the reference
    parameter), ``activation``/``activation_name`` (σ of inserted blocks)."""

    block_kind = "residual"
    blocks: nn.ModuleList
    head: nn.Module
    activation: Activation
    activation_name: str

    # -- what a subclass defines --------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def operator(self) -> InsertionOperator:
        """The insertion operator of every location."""
        raise NotImplementedError

    def new_block(self, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor]) -> nn.Module:
        """The block ``insert_block`` builds by default (the operator's residual block)."""
        return self.operator().block(self.activation_name, weight, bias, **like(self))

    def check_block(self, block: nn.Module) -> None:
        """Raise unless ``block`` fits this stream (subclasses check kinds and sizes)."""

    def check_input(self, x: torch.Tensor, shape: tuple) -> None:
        """ValueError unless every sample of the batch ``x`` has the shape ``shape``."""
        if tuple(x.shape[1:]) != tuple(shape):
            raise ValueError(f"input of shape {tuple(x.shape[1:])} per sample, the network takes {tuple(shape)}")

    # -- the growable protocol ----------------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def n_locations(self) -> int:
        return len(self.blocks) + 1

    def locations(self) -> list[Location]:
        """Location k is the state h_k (after the embedding for k = 0, after block k otherwise)."""
        operator = self.operator()
        return [Location(k, f"h{k}", operator) for k in range(self.n_locations)]

    def reference_parameter(self) -> torch.Tensor:
        return self.head.weight

    def forward(self, x: torch.Tensor, location_hook: Optional[LocationHook] = None) -> torch.Tensor:
        h = self.embed(x)
        if location_hook is not None:
            h = location_hook(0, h)
        for k, block in enumerate(self.blocks, start=1):
            h = block(h)
            if location_hook is not None:
                h = location_hook(k, h)
        return self.readout(h)

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[h_0, ..., h_T]``, the state at every location."""
        states: list[torch.Tensor] = []

        def record(_location, h):
            states.append(h)
            return h

        self.forward(x, location_hook=record)
        return states

    def check_location(self, location: int) -> int:
        if isinstance(location, bool) or not isinstance(location, int) or not 0 <= location <= self.n_blocks:
            raise IndexError(f"location {location!r} out of range: this network has locations "
                             f"0..{self.n_blocks} (0 after the input layer, k after block k)")
        return location

    def insert_block(self, index: int, weight=None, bias=None, block: Optional[nn.Module] = None) -> nn.Module:
        """Insert a block at location ``index`` (acting on h_index) and return it.

        Without ``block`` the default block is built with ``weight``/``bias`` (None: zero); for
        residual kinds a zero weight and bias leave the function unchanged exactly. ``block``
        inserts a prebuilt block, which must have the network's dtype and device (build it with
        ``dtype=``, ``device=``): converting afterwards would round the values it was built with.
        """
        self.check_location(index)
        ref = self.reference_parameter()
        if block is None:
            block = self.new_block(weight, bias)
        elif weight is not None or bias is not None:
            raise ValueError("pass either a prebuilt block or weight/bias, not both")
        self.check_block(block)
        probe = next(block.parameters())
        if probe.dtype != ref.dtype or probe.device != ref.device:
            raise ValueError(f"block has dtype {probe.dtype} on {probe.device}, the network {ref.dtype} on "
                             f"{ref.device}; build it with dtype= and device=")
        self.blocks.insert(index, block)
        return block

    def remove_block(self, index: int) -> nn.Module:
        """Remove and return the block right after location ``index`` (the one inserted there)."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.n_blocks:
            raise IndexError(f"no block after location {index!r} (this network has {self.n_blocks} blocks)")
        block = self.blocks[index]
        del self.blocks[index]
        return block
