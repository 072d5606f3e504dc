"""Blocks inserted by the growth methods (docs/methods.md notation).

* ``ResidualBlock``  ``h + σ(W h + b)``            zero W and b: the identity exactly (σ(0) = 0);
* ``TwoWeightBlock`` ``h + W2 σ(W1 h + b)``        W2 = 0: the identity for any W1, b (SensLI);
* ``DenseBlock``     ``σ(W h + b)``                no skip connection (Forward Thinking's plain stack);
* ``ConvResidualBlock``  ``h + σ(W ∗ h + b)``      on (C, H, W) states, k×k 'same' convolution;
* ``ConvTwoWeightBlock`` ``h + W2 ∗ σ(W1 ∗ h + b)`` W2 = 0: the identity (SensLI).

A token-wise block is a ``ResidualBlock`` applied to the last axis of a (T, D) state.

Every residual block has ``set_parameters(weight, bias)`` (None: zero), which the ε line search uses.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .activations import Activation, get_activation

__all__ = ["OneLayerBlock", "TwoLayerBlock", "ResidualBlock", "TwoWeightBlock", "DenseBlock", "BLOCKS",
           "ConvResidualBlock", "ConvTwoWeightBlock", "copy_or_zero", "odd_kernel"]


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


class OneLayerBlock(nn.Module):
    """``h + σ(L h)`` for a linear map L (``layer``: ``nn.Linear`` or ``nn.Conv2d`` with weight W, bias b)."""

    kind = "one_layer"
    activation_name: str
    act: Activation

    @property
    def layer(self) -> nn.Module:
        raise NotImplementedError

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.act(self.layer(h))

    def set_parameters(self, weight: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None) -> None:
        """Set W and b (None: zero)."""
        copy_or_zero(self.layer.weight, weight, "weight")
        copy_or_zero(self.layer.bias, bias, "bias")

    def scored_parameters(self) -> tuple[nn.Parameter, Optional[nn.Parameter]]:
        """(W, b): the parameters whose gradient at the virtual block is one-weight SensLI's score."""
        return self.layer.weight, self.layer.bias

    def spec(self) -> dict:
        return {"kind": self.kind, "activation": self.activation_name}


class TwoLayerBlock(nn.Module):
    """``h + L2 σ(L1 h)`` for linear maps L1 (weight W1, bias b) and L2 (weight W2, no bias)."""

    kind = "two_layer"
    activation_name: str
    act: Activation

    @property
    def layers(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        first, second = self.layers
        return h + second(self.act(first(h)))

    def set_parameters(self, weight=None, bias=None, weight2=None) -> None:
        """Set W1, b and W2 (None: zero; W2 = 0 makes the block the identity)."""
        first, second = self.layers
        copy_or_zero(first.weight, weight, "weight")
        copy_or_zero(first.bias, bias, "bias")
        copy_or_zero(second.weight, weight2, "weight2")

    def scored_parameters(self) -> tuple[nn.Parameter, None]:
        """(W2, None): the parameter whose gradient at the virtual block is two-weight SensLI's score."""
        return self.layers[1].weight, None

    def spec(self) -> dict:
        return {"kind": self.kind, "activation": self.activation_name}


class ResidualBlock(OneLayerBlock):
    """``h + σ(W h + b)``; W and b default to zero, which makes the block the identity."""

    kind = "residual"

    def __init__(self, width: int, activation: str, weight=None, bias=None, dtype=None, device=None):
        super().__init__()
        self.activation_name = activation
        self.act = get_activation(activation)
        self.linear = nn.Linear(width, width, dtype=dtype, device=device)
        self.set_parameters(weight, bias)

    @property
    def layer(self) -> nn.Linear:
        return self.linear


class TwoWeightBlock(TwoLayerBlock):
    """``h + W2 σ(W1 h + b)`` (no bias after W2); W2 defaults to zero (identity), W1 and b to zero."""

    kind = "two_weight"

    def __init__(self, width: int, activation: str, weight=None, bias=None, weight2=None, dtype=None, device=None):
        super().__init__()
        self.activation_name = activation
        self.act = get_activation(activation)
        self.linear1 = nn.Linear(width, width, dtype=dtype, device=device)
        self.linear2 = nn.Linear(width, width, bias=False, dtype=dtype, device=device)
        self.set_parameters(weight, bias, weight2)

    @property
    def layers(self) -> tuple[nn.Linear, nn.Linear]:
        return self.linear1, self.linear2


class DenseBlock(ResidualBlock):
    """``σ(W h + b)``: a plain layer, no skip connection (not function preserving)."""

    kind = "dense"

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(h))


BLOCKS = {cls.kind: cls for cls in (ResidualBlock, TwoWeightBlock, DenseBlock)}


def odd_kernel(kernel_size: int) -> int:
    """``kernel_size``; ValueError unless it is odd ('same' padding keeps the state shape)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
    return kernel_size


class ConvResidualBlock(OneLayerBlock):
    """``h + σ(W ∗ h + b)`` on (C, H, W) states, W of shape (C, C, k, k), 'same' zero padding (odd k);
    W and b default to zero, which makes the block the identity."""

    kind = "conv_residual"

    def __init__(self, channels: int, kernel_size: int, activation: str, weight=None, bias=None, dtype=None,
                 device=None):
        super().__init__()
        k = odd_kernel(kernel_size)
        self.activation_name = activation
        self.act = get_activation(activation)
        self.conv = nn.Conv2d(channels, channels, k, padding=k // 2, dtype=dtype, device=device)
        self.set_parameters(weight, bias)

    @property
    def layer(self) -> nn.Conv2d:
        return self.conv

    def spec(self) -> dict:
        return {**super().spec(), "kernel_size": self.conv.kernel_size[0]}


class ConvTwoWeightBlock(TwoLayerBlock):
    """``h + W2 ∗ σ(W1 ∗ h + b)`` (no bias after W2), both k×k 'same'; W2 defaults to zero (identity)."""

    kind = "conv_two_weight"

    def __init__(self, channels: int, kernel_size: int, activation: str, weight=None, bias=None, weight2=None,
                 dtype=None, device=None):
        super().__init__()
        k = odd_kernel(kernel_size)
        self.activation_name = activation
        self.act = get_activation(activation)
        self.conv1 = nn.Conv2d(channels, channels, k, padding=k // 2, dtype=dtype, device=device)
        self.conv2 = nn.Conv2d(channels, channels, k, padding=k // 2, bias=False, dtype=dtype, device=device)
        self.set_parameters(weight, bias, weight2)

    @property
    def layers(self) -> tuple[nn.Conv2d, nn.Conv2d]:
        return self.conv1, self.conv2

    def spec(self) -> dict:
        return {**super().spec(), "kernel_size": self.conv1.kernel_size[0]}
