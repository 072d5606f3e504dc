"""A growable residual convolutional network on (C_in, H, W) inputs.

``h_0 = a(W_stem ∗ x + b)`` (k×k 'same' convolution to ``channels`` channels, ``stem_activation``),
blocks ``h_k = h_{k−1} + σ(W_k ∗ h_{k−1} + b_k)`` (k×k 'same', C → C), and a head that fits the task:

* ``head="pool"``: global average pooling and a linear layer, (B, out) (classification, regression);
* ``head="field"``: a k×k 'same' convolution to ``out`` channels, (B, out, H, W) (field-to-field).

The resolution is constant along the stream, so every location has the state shape (C, H, W) and a
:class:`~growth.operators.ConvOperator`. Initial blocks get PyTorch's default ``nn.Conv2d``
initialization (seed with ``torch.manual_seed``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .activations import Activation, get_activation
from .blocks import ConvResidualBlock, ConvTwoWeightBlock, odd_kernel
from .operators import ConvOperator
from .stream import BlockStream

__all__ = ["ResidualCNN", "CONV_BLOCKS"]

CONV_BLOCKS = {cls.kind: cls for cls in (ConvResidualBlock, ConvTwoWeightBlock)}
HEADS = ("pool", "field")


class ResidualCNN(BlockStream):
    """Conv stem, ``n_blocks`` residual conv blocks of ``channels`` channels, pooled or field head."""

    def __init__(self, in_channels: int, out: int, channels: int, n_blocks: int, image_size: tuple[int, int],
                 kernel_size: int = 3, activation: str = "td", stem_activation: Optional[str] = "tanh",
                 head: str = "pool"):
        super().__init__()
        if min(in_channels, out, channels, *image_size) < 1 or n_blocks < 0:
            raise ValueError("in_channels, out, channels and the image size must be >= 1, n_blocks >= 0")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        odd_kernel(kernel_size)
        self.in_channels, self.out, self.channels = in_channels, out, channels
        self.image_size, self.kernel_size, self.head_kind = tuple(image_size), kernel_size, head
        self.activation_name, self.stem_activation_name = activation, stem_activation
        self.activation: Activation = get_activation(activation)
        self.stem_activation: Activation = get_activation(stem_activation)
        pad = kernel_size // 2
        self.stem = nn.Conv2d(in_channels, channels, kernel_size, padding=pad)
        self.blocks = nn.ModuleList()
        for _ in range(n_blocks):
            block = ConvResidualBlock(channels, kernel_size, activation)
            block.conv.reset_parameters()
            self.blocks.append(block)
        self.head = (nn.Linear(channels, out) if head == "pool"
                     else nn.Conv2d(channels, out, kernel_size, padding=pad))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x, (self.in_channels, *self.image_size))
        return self.stem_activation(self.stem(x))

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h.mean(dim=(2, 3))) if self.head_kind == "pool" else self.head(h)

    def operator(self) -> ConvOperator:
        return ConvOperator(self.channels, *self.image_size, kernel_size=self.kernel_size)

    def check_block(self, block: nn.Module) -> None:
        if type(block) not in CONV_BLOCKS.values():
            raise TypeError(f"block must be one of {sorted(CONV_BLOCKS)}, got {type(block).__name__}")
        probe = next(block.parameters())
        if tuple(probe.shape[:2]) != (self.channels, self.channels):
            raise ValueError(f"block has {probe.shape[1]} channels, the network {self.channels}")

    def architecture(self) -> dict:
        """Everything needed to rebuild this (possibly grown) network, as plain JSON data."""
        return {"in_channels": self.in_channels, "out": self.out, "channels": self.channels,
                "image_size": list(self.image_size), "kernel_size": self.kernel_size,
                "activation": self.activation_name, "stem_activation": self.stem_activation_name,
                "head": self.head_kind, "blocks": [b.spec() for b in self.blocks]}

    @classmethod
    def from_architecture(cls, arch: dict) -> "ResidualCNN":
        net = cls(arch["in_channels"], arch["out"], arch["channels"], 0, tuple(arch["image_size"]),
                  arch["kernel_size"], arch["activation"], arch["stem_activation"], arch["head"])
        for spec in arch["blocks"]:
            net.blocks.append(CONV_BLOCKS[spec["kind"]](arch["channels"], spec["kernel_size"], spec["activation"]))
        return net

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, image_size={self.image_size}, kernel_size={self.kernel_size}, "
                f"activation={self.activation_name!r}, head={self.head_kind!r}, blocks={self.n_blocks}")
