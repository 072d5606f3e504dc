"""Insertion operators: the block a growth method inserts at a location, and its topological derivative.

Every operator inserts ``x + σ(ε(Φ ⋆ x + b))`` (σ(0) = 0: the identity at ε = 0) where ``⋆`` is the
layer type's linear map. All of them are *row maps*: a state h of one sample is cut into R rows
h̃_{s,q} ∈ R^m (q = 1..R) such that output channel r of Φ ⋆ h at row q is φ_r · h̃_{s,q} (φ_r ∈ R^m,
row r of Φ as a matrix of shape (n, m)), and the adjoint λ = −∂J/∂h is cut into matching rows
λ_{s,r,q}. The topological derivative of docs/methods.md §B then holds with rows as extra samples:

    J(ε) − J(0) = −(ε²/2) Σ_r φ_rᵀ Q_r φ_r + O(ε³),   Q_r = σ''(0) Σ_{s,q} λ_{s,r,q} h̃_{s,q} h̃_{s,q}ᵀ,

and the SensLI gradients are ``−Σ_{s,q} λ_{s,q} ⊗ h̃_{s,q}`` (:mod:`growth.sensitivity`). One
implementation of Q, of SensLI and of the adaptive estimator serves every operator:

* :class:`DenseOperator` (n,) states: one row per sample, h̃ = h, m = n;
* :class:`ConvOperator` (C, H, W) states, k×k 'same' convolution: one row per position, h̃ the
  unfolded patch (m = C k²), n = C;
* :class:`TokenOperator` (T, D) states: one row per token, h̃ the token (m = n = D).

Rows may be subsampled per sample without bias, like samples (``positions=`` of
:func:`growth.topological.q_blocks`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvResidualBlock, ConvTwoWeightBlock, ResidualBlock, TwoWeightBlock, odd_kernel

__all__ = ["InsertionOperator", "DenseOperator", "ConvOperator", "TokenOperator"]


class InsertionOperator(ABC):
    """The row map and the blocks of one layer type at one state shape (module docstring).

    ``shape``: the state of one sample; ``n``: output channels (rows of Φ); ``m``: features per row
    (columns of Φ, without bias); ``rows_per_sample``: R; ``weight_shape``: the inserted block's weight.
    """

    kind: str = "operator"
    shape: tuple
    n: int
    m: int
    weight_shape: tuple

    @property
    def rows_per_sample(self) -> int:
        return 1

    @abstractmethod
    def rows(self, h: torch.Tensor) -> torch.Tensor:
        """The rows h̃_{s,q} of a batch of states: (B, R, m)."""

    @abstractmethod
    def adjoint_rows(self, lam: torch.Tensor) -> torch.Tensor:
        """The rows λ_{s,·,q} of a batch of adjoints (the shape of the states): (B, R, n)."""

    def to_weight(self, phi: torch.Tensor) -> torch.Tensor:
        """A direction Φ given as an (n, m) matrix, as the block's weight (``weight_shape``)."""
        return phi.reshape(self.weight_shape)

    def split(self, phi: torch.Tensor, bias: bool) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(weight of ``weight_shape``, bias or None) of a direction φ of shape (n, m (+1 with bias))."""
        if not bias:
            return self.to_weight(phi), None
        return self.to_weight(phi[:, :-1].contiguous()), phi[:, -1].contiguous()

    @abstractmethod
    def block(self, activation: str, weight: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None,
              *, dtype=None, device=None) -> nn.Module:
        """The residual block ``x + σ(W ⋆ x + b)`` (None: zero, the identity); it has
        ``set_parameters(weight, bias)``."""

    @abstractmethod
    def two_weight_block(self, activation: str, weight: Optional[torch.Tensor] = None, *, dtype=None,
                         device=None) -> nn.Module:
        """SensLI's block ``x + W2 ⋆ σ(W1 ⋆ x + b)`` with W1 = ``weight``, b = 0, W2 = 0 (the identity)."""

    @abstractmethod
    def identity_weight(self, scale: float, *, dtype=None, device=None) -> torch.Tensor:
        """``scale`` times the identity map, as a weight of ``weight_shape`` (SensLI's W1 = 0.8·I)."""

    def flops_per_sample(self, bias: bool) -> float:
        """Flops of this location's Q blocks per sample: 2·R·n·(m + bias)²."""
        m = self.m + int(bias)
        return 2.0 * self.rows_per_sample * self.n * m * m


class DenseOperator(InsertionOperator):
    """``x + σ(ε(Φ x + b))`` on (n,) states (today's MLP block): R = 1, h̃ = h."""

    kind = "dense"

    def __init__(self, width: int):
        self.shape, self.n, self.m, self.weight_shape = (width,), width, width, (width, width)

    def rows(self, h: torch.Tensor) -> torch.Tensor:
        return h[:, None, :]

    def adjoint_rows(self, lam: torch.Tensor) -> torch.Tensor:
        return lam[:, None, :]

    def block(self, activation, weight=None, bias=None, *, dtype=None, device=None):
        return ResidualBlock(self.n, activation, weight, bias, dtype=dtype, device=device)

    def two_weight_block(self, activation, weight=None, *, dtype=None, device=None):
        return TwoWeightBlock(self.n, activation, weight=weight, dtype=dtype, device=device)

    def identity_weight(self, scale, *, dtype=None, device=None):
        return scale * torch.eye(self.n, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return f"DenseOperator({self.n})"


class ConvOperator(InsertionOperator):
    """``x + σ(ε(Φ ∗ x + b))`` on (C, H, W) states, Φ of shape (C, C, k, k), 'same' zero padding:
    R = H·W rows per sample, the unfolded patches p_{s,q} ∈ R^{C k²} (channel-major, then kernel
    row and column: the layout of ``Φ.reshape(C, C k²)``), so that (Φ ∗ h)_{r,q} = φ_r · p_q and
    ``Q_r = σ''(0) Σ_{s,q} λ_{s,r,q} p_{s,q} p_{s,q}ᵀ`` ((C k²)² per channel, never (C² k²)²)."""

    kind = "conv"

    def __init__(self, channels: int, height: int, width: int, kernel_size: int = 3):
        self.shape, self.kernel_size = (channels, height, width), odd_kernel(kernel_size)
        self.n, self.m = channels, channels * kernel_size ** 2
        self.weight_shape = (channels, channels, kernel_size, kernel_size)

    @property
    def rows_per_sample(self) -> int:
        return self.shape[1] * self.shape[2]

    def rows(self, h: torch.Tensor) -> torch.Tensor:
        return F.unfold(h, self.kernel_size, padding=self.kernel_size // 2).transpose(1, 2)

    def adjoint_rows(self, lam: torch.Tensor) -> torch.Tensor:
        return lam.flatten(2).transpose(1, 2)

    def block(self, activation, weight=None, bias=None, *, dtype=None, device=None):
        return ConvResidualBlock(self.n, self.kernel_size, activation, weight, bias, dtype=dtype, device=device)

    def two_weight_block(self, activation, weight=None, *, dtype=None, device=None):
        return ConvTwoWeightBlock(self.n, self.kernel_size, activation, weight=weight, dtype=dtype, device=device)

    def identity_weight(self, scale, *, dtype=None, device=None):
        weight = torch.zeros(self.weight_shape, dtype=dtype, device=device)
        centre = self.kernel_size // 2
        weight[:, :, centre, centre] = scale * torch.eye(self.n, dtype=dtype, device=device)
        return weight

    def __repr__(self) -> str:
        c, h, w = self.shape
        return f"ConvOperator({c}, {h}, {w}, kernel_size={self.kernel_size})"


class TokenOperator(DenseOperator):
    """``x + σ(ε(Φ x + b))`` applied to every token of (T, D) states (a transformer's residual
    stream): R = T rows per sample, h̃_{s,t} = h_{s,t}, Φ of shape (D, D); the block is a dense
    :class:`~growth.blocks.ResidualBlock` acting on the last axis."""

    kind = "token"

    def __init__(self, tokens: int, dim: int):
        super().__init__(dim)
        self.shape = (tokens, dim)

    @property
    def rows_per_sample(self) -> int:
        return self.shape[0]

    def rows(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def adjoint_rows(self, lam: torch.Tensor) -> torch.Tensor:
        return lam

    def __repr__(self) -> str:
        return f"TokenOperator({self.shape[0]}, {self.shape[1]})"
