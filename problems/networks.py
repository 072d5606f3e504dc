"""The network a problem's preset asks for: a ResidualMLP on flat features (no ``network`` setting), or
a residual CNN or vision transformer on image- and grid-shaped inputs (``network: {...}``).

The preset's ``network`` mapping is a problem-level setting (like ``methods``), typed by
:class:`Architecture` and recorded in every run's config.json (so a changed architecture redoes
exactly its runs). The methods' ``width`` is the CNN's channel count and the ViT's token width D;
``n_blocks``/``final_blocks`` count the blocks of the residual stream:

* ``kind="cnn"``: :class:`growth.ResidualCNN` (conv stem with the methods' ``input_activation``,
  ``n_blocks`` k×k residual conv blocks ``h + σ(W ∗ h + b)``, σ the methods' ``activation``), with a
  pooled linear head for classification and a k×k conv head for field-to-field maps;
* ``kind="vit"``: :class:`growth.VisionTransformer` (p×p patches, ``transformer_blocks`` pre-LayerNorm
  transformer layers of ``heads`` heads, class-token head); growth inserts token-wise residual blocks
  ``x + σ(W x + b)`` between them, so a stream of ``n_blocks`` blocks holds the transformer layers and
  ``n_blocks − transformer_blocks`` token-wise blocks (the fixed baseline's are appended after the
  transformer layers with PyTorch's default ``nn.Linear`` initialization).

Methods that need more than the growable protocol (a plain MLP stack: layerwise training, SRL,
Forward Thinking) are not available on these networks (:func:`check_available`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from torch import nn

import growth
from common.errors import UserError
from problems.config import build

__all__ = ["Architecture", "architecture", "build_network"]


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """``kind``; ``kernel_size`` (CNN, odd); ``patch_size``, ``heads``, ``mlp_dim`` (None: 2D) and
    ``transformer_blocks`` (ViT)."""

    kind: Literal["cnn", "vit"]
    kernel_size: int = 3
    patch_size: int = 7
    heads: int = 2
    mlp_dim: Optional[int] = None
    transformer_blocks: int = 1


def architecture(problem) -> Optional[Architecture]:
    """The typed ``network`` setting of ``problem``'s preset (None: the ResidualMLP)."""
    spec = problem.settings.get("network")
    if spec is None:
        return None
    return build(Architecture, spec, f"{problem.name} preset '{problem.preset}', setting network")


def build_network(arch: Architecture, config, data, n_blocks: int, width: Optional[int] = None) -> nn.Module:
    """The CNN or ViT of ``arch`` with ``n_blocks`` stream blocks for ``data``'s (C, H, W) inputs, the
    methods' activations and ``width`` (default ``config.width``), in the inputs' dtype."""
    shape = tuple(data.x_train.shape[1:])
    if len(shape) != 3:
        raise UserError(f"a {arch.kind} network needs (C, H, W) inputs, the problem gives {shape}")
    width = width or config.width
    classify = data.n_classes is not None
    out = data.n_classes if classify else data.y_train.shape[1]
    if arch.kind == "cnn":
        net = growth.ResidualCNN(shape[0], out, width, n_blocks, shape[1:], arch.kernel_size, config.activation,
                                 config.input_activation, head="pool" if classify else "field")
    else:
        if n_blocks < arch.transformer_blocks:
            raise UserError(f"a ViT of {arch.transformer_blocks} transformer layers has at least that many "
                            f"blocks; the method asks for {n_blocks}")
        net = growth.VisionTransformer(shape[0], out, shape[1:], arch.patch_size, width, arch.transformer_blocks,
                                       arch.heads, arch.mlp_dim, config.activation, pool="cls")
        for _ in range(n_blocks - arch.transformer_blocks):
            block = growth.ResidualBlock(width, config.activation)
            block.linear.reset_parameters()
            net.blocks.append(block)
    return net.to(data.x_train.dtype)
