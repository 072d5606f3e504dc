"""Residual blocks inserted by the growth methods (the dense ones; docs/methods.md notation).

* ``ResidualBlock``  ``h + σ(W h + b)``            zero W and b: the identity exactly (σ(0) = 0);
* ``TwoWeightBlock`` ``h + W2 σ(W1 h + b)``        W2 = 0: the identity for any W1, b (SensLI);
* ``DenseBlock``     ``σ(W h + b)``                no skip connection (Forward Thinking's plain stack).

Every residual block has ``set_parameters(weight, bias)`` (None: zero), which the ε line search uses.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .activations import Activation, get_activation

__all__ = ["ResidualBlock", "TwoWeightBlock", "DenseBlock", "BLOCKS", "copy_or_zero"]


def copy_or_zero(param: nn.Parameter, value: Optional[torch.Tensor], what: str) -> None:
    with torch.no_grad():
        if value is None:
            param.zero_()
            return
        value = torch.as_tensor(value)
        if value.shape != param.shape:
            raise ValueError(f"{what} has shape {tuple(value.shape)}, the block needs {tuple(param.shape)} "
                             "(width mismatch)")
        param.copy_(value)


class ResidualBlock(nn.Module):
    """``h + σ(W h + b)``; W and b default to zero, which makes the block the identity."""

    kind = "residual"

    def __init__(self, width: int, activation: str, weight=None, bias=None, dtype=None, device=None):
        super().__init__()
        self.activation_name = activation
        self.act: Activation = get_activation(activation)
        self.linear = nn.Linear(width, width, dtype=dtype, device=device)
        copy_or_zero(self.linear.weight, weight, "weight")
        copy_or_zero(self.linear.bias, bias, "bias")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.act(self.linear(h))

    def set_parameters(self, weight: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None) -> None:
        """Set W and b (None: zero)."""
        copy_or_zero(self.linear.weight, weight, "weight")
        copy_or_zero(self.linear.bias, bias, "bias")

    def scored_parameters(self) -> tuple[nn.Parameter, Optional[nn.Parameter]]:
        """(W, b): the parameters whose gradient at the virtual block is one-weight SensLI's score."""
        return self.linear.weight, self.linear.bias

    def spec(self) -> dict:
        return {"kind": self.kind, "activation": self.activation_name}


class TwoWeightBlock(nn.Module):
    """``h + W2 σ(W1 h + b)`` (no bias after W2); W2 defaults to zero (identity), W1 and b to zero."""

    kind = "two_weight"

    def __init__(self, width: int, activation: str, weight=None, bias=None, weight2=None, dtype=None, device=None):
        super().__init__()
        self.activation_name = activation
        self.act: Activation = get_activation(activation)
        self.linear1 = nn.Linear(width, width, dtype=dtype, device=device)
        self.linear2 = nn.Linear(width, width, bias=False, dtype=dtype, device=device)
        copy_or_zero(self.linear1.weight, weight, "weight")
        copy_or_zero(self.linear1.bias, bias, "bias")
        copy_or_zero(self.linear2.weight, weight2, "weight2")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.linear2(self.act(self.linear1(h)))

    def scored_parameters(self) -> tuple[nn.Parameter, None]:
        """(W2, None): the parameter whose gradient at the virtual block is two-weight SensLI's score."""
        return self.linear2.weight, None

    def spec(self) -> dict:
        return {"kind": self.kind, "activation": self.activation_name}


class DenseBlock(ResidualBlock):
    """``σ(W h + b)``: a plain layer, no skip connection (not function preserving)."""

    kind = "dense"

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(h))


BLOCKS = {cls.kind: cls for cls in (ResidualBlock, TwoWeightBlock, DenseBlock)}
