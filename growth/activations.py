"""Activation functions with their Taylor data at zero.

Growth methods need to know how an activation behaves at 0:

* function-preserving insertion of a block ``h + σ(W h + b)`` with ``W = 0, b = 0`` needs σ(0) = 0;
* the topological derivative (docs/methods.md §B) needs σ(0) = σ'(0) = 0 ≠ σ''(0), because the
  perturbation ``h + σ(εΦh)`` then changes the state by ``ε² σ''(0) (Φh)² / 2 + O(ε³)``;
* the one-weight SensLI block needs σ'(0) ≠ 0.

``d1``/``d2`` follow PyTorch's autograd at 0 where the one-sided derivatives differ: ReLU'(0) = 0
(autograd's subgradient), and ``d2 = None`` for ELU and ReLU, which are not twice differentiable at 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

__all__ = ["Activation", "ACTIVATIONS", "get_activation"]


@dataclass(frozen=True)
class Activation:
    """σ with ``d0 = σ(0)``, ``d1 = σ'(0)``, ``d2 = σ''(0)`` (None: not twice differentiable at 0)."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    d0: float
    d1: float
    d2: Optional[float]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.fn(z)

    @property
    def admits_topological_derivative(self) -> bool:
        """σ(0) = σ'(0) = 0 ≠ σ''(0): the condition of docs/methods.md §B."""
        return self.d0 == 0.0 and self.d1 == 0.0 and self.d2 not in (None, 0.0)


def _td(z: torch.Tensor) -> torch.Tensor:
    # 2·SiLU(z) − tanh(z) = 0·z + z²/2 + z³/3 + O(z⁵): σ(0) = σ'(0) = 0, σ''(0) = 1, σ'''(0) = 2.
    return 2.0 * F.silu(z) - torch.tanh(z)


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


ACTIVATIONS = {
    "td": Activation("td", _td, 0.0, 0.0, 1.0),
    "elu": Activation("elu", F.elu, 0.0, 1.0, None),
    "tanh": Activation("tanh", torch.tanh, 0.0, 1.0, 0.0),
    "relu": Activation("relu", F.relu, 0.0, 0.0, None),
    "identity": Activation("identity", _identity, 0.0, 1.0, 0.0),
}


def get_activation(name: str | None) -> Activation:
    """The activation called ``name`` (None means the identity)."""
    key = "identity" if name is None else name
    try:
        return ACTIVATIONS[key]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None
