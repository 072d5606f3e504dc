"""The growable protocol: what every growth method asks of a network (docs/design.md, "Growable").

A network is growable when its *residual stream* has named insertion points. The growth methods
(topological derivative, SensLI, ε line search, random insertion, Net2DeeperNet, the trainer) talk
only to this protocol and to the :class:`~growth.operators.InsertionOperator` of each location:

* ``locations()``: the insertion points in forward order, each a :class:`Location` (its index, a
  name, the per-sample shape of the state there, and its insertion operator);
* ``forward(x, location_hook=None)``: ``location_hook(index, h) -> h`` is called on the state at
  every location, in order (used to read states and inject zero probes for adjoints);
* ``insert_block(location, block=...)``: put ``block`` on the stream right after ``location`` (it
  acts on that state); afterwards ``remove_block(location)`` removes it again. Inserting shifts
  the indices of the later locations by one;
* ``reference_parameter()``: a parameter whose dtype and device new blocks must have;
* ``activation``: σ of inserted blocks (an :class:`~growth.activations.Activation`);
  ``block_kind``: ``"residual"`` when ``insert_block`` builds ``x + σ(W x + b)`` by default;
* ``n_blocks``: the current depth (the trainer's ``max_blocks`` test).

Two methods need more than a residual stream and say so: Forward Thinking and layerwise training
train "the newest layer and the head" of a plain stack, :class:`Stack`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from .activations import Activation
    from .operators import InsertionOperator

__all__ = ["Location", "Growable", "Stack", "LocationHook", "check_growable", "location_of", "insert_residual",
           "like"]

LocationHook = Callable[[int, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Location:
    """One insertion point: ``index`` (0-based, forward order), ``name`` and the ``operator`` that
    inserts blocks there; ``shape`` is the state of one sample there, e.g. (n,), (C, H, W) or (T, D)."""

    index: int
    name: str
    operator: "InsertionOperator"

    @property
    def shape(self) -> tuple:
        return self.operator.shape


@runtime_checkable
class Growable(Protocol):
    """A network that growth methods can insert residual blocks into (module docstring)."""

    activation: "Activation"
    block_kind: str

    @property
    def n_blocks(self) -> int: ...

    def locations(self) -> list[Location]: ...

    def forward(self, x: torch.Tensor, location_hook: Optional[LocationHook] = None) -> torch.Tensor: ...

    def insert_block(self, location: int, block: nn.Module) -> nn.Module: ...

    def remove_block(self, location: int) -> nn.Module: ...

    def reference_parameter(self) -> torch.Tensor: ...


@runtime_checkable
class Stack(Protocol):
    """A plain stack ``input_layer → blocks → head`` of constant ``width`` (Forward Thinking, layerwise
    training): ``blocks`` an ``nn.ModuleList``, ``head`` an ``nn.Linear``, ``hidden_states(x)`` the
    state after the input layer and after every block."""

    width: int
    out_features: int
    input_layer: nn.Module
    blocks: nn.ModuleList
    head: nn.Module

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]: ...


GROWABLE_MEMBERS = ("activation", "block_kind", "n_blocks", "locations", "insert_block", "remove_block",
                    "reference_parameter")
STACK_MEMBERS = ("width", "out_features", "input_layer", "blocks", "head", "hidden_states")


def has_members(net: nn.Module, members: tuple[str, ...]) -> bool:
    """Whether ``net`` has every one of ``members`` (a protocol's, e.g. :data:`STACK_MEMBERS`).

    Checked with ``hasattr``, not ``isinstance(net, Protocol)``: from Python 3.12 on, ``isinstance``
    against a runtime-checkable protocol looks members up statically and so misses submodules, which
    ``nn.Module`` keeps in ``_modules`` and serves through ``__getattr__``."""
    return all(hasattr(net, name) for name in members)


def check_growable(net: nn.Module) -> None:
    """TypeError naming what is missing unless ``net`` implements :class:`Growable`."""
    if not has_members(net, GROWABLE_MEMBERS):
        missing = [name for name in GROWABLE_MEMBERS if not hasattr(net, name)]
        raise TypeError(f"{type(net).__name__} is not a growable network (missing {', '.join(missing)}); "
                        "use a growth network or growth.wrap(model, locations=[...])")


def location_of(net: Growable, location: int) -> Location:
    """The :class:`Location` with index ``location``; IndexError naming the valid range otherwise."""
    locations = net.locations()
    if isinstance(location, bool) or not isinstance(location, int) or not 0 <= location < len(locations):
        raise IndexError(f"location {location!r} out of range: this network has locations 0..{len(locations) - 1}")
    return locations[location]


def like(net: Growable) -> dict:
    """``{"dtype": ..., "device": ...}`` of the network's reference parameter (for new tensors and blocks)."""
    ref = net.reference_parameter()
    return {"dtype": ref.dtype, "device": ref.device}


def insert_residual(net: Growable, location: int, weight: Optional[torch.Tensor] = None,
                    bias: Optional[torch.Tensor] = None) -> nn.Module:
    """Insert the operator's residual block ``x + σ(W ⋆ x + b)`` (None: zero, the identity) at
    ``location``, with the network's activation, dtype and device; return it."""
    operator = location_of(net, location).operator
    block = operator.block(net.activation.name, weight, bias, **like(net))
    return net.insert_block(location, block=block)
