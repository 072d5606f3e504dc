"""A small growable vision transformer on (C_in, H, W) inputs.

Patch embedding (a p×p convolution with stride p to ``dim`` channels, the N = (H/p)(W/p) patches as
tokens), an optional class token, a learned position embedding; then the residual stream of
pre-LayerNorm transformer blocks ``x + MHA(LN x)``, ``x + W2 GELU(W1 LN x)``; a final LayerNorm and a
linear head on the class token (``pool="cls"``) or on the mean of the tokens (``pool="mean"``).

Location k is the (T, D) token state after k blocks (T = N, +1 with a class token); growth inserts
the token-wise block ``x + σ(W x + b)`` (:class:`~growth.operators.TokenOperator`) between
transformer layers, so the stream may mix transformer and token-wise blocks. Initial parameters:
PyTorch's defaults, class token and position embedding N(0, 0.02²) (seed with ``torch.manual_seed``).
"""
from __future__ import annotations

import torch
from torch import nn

from .activations import Activation, get_activation
from .blocks import BLOCKS, ResidualBlock, TwoWeightBlock
from .operators import TokenOperator
from .stream import BlockStream

__all__ = ["TransformerBlock", "VisionTransformer"]

POOLS = ("cls", "mean")


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer layer: ``x + MHA(LN₁ x)``, then ``x + W2 GELU(W1 LN₂ x + b1) + b2``."""

    kind = "transformer"

    def __init__(self, dim: int, heads: int, mlp_dim: int, dtype=None, device=None):
        super().__init__()
        like = {"dtype": dtype, "device": device}
        self.heads, self.mlp_dim = heads, mlp_dim
        self.norm1 = nn.LayerNorm(dim, **like)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True, **like)
        self.norm2 = nn.LayerNorm(dim, **like)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim, **like), nn.GELU(), nn.Linear(mlp_dim, dim, **like))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.norm1(x)
        x = x + self.attention(z, z, z, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))

    def spec(self) -> dict:
        return {"kind": self.kind, "heads": self.heads, "mlp_dim": self.mlp_dim}


class VisionTransformer(BlockStream):
    """Patch embedding, ``n_blocks`` transformer blocks of width ``dim``, class-token or mean-pooled head."""

    def __init__(self, in_channels: int, out: int, image_size: tuple[int, int], patch_size: int, dim: int,
                 n_blocks: int, heads: int = 2, mlp_dim: int | None = None, activation: str = "td",
                 pool: str = "cls"):
        super().__init__()
        height, width = image_size
        if min(in_channels, out, dim, heads, patch_size) < 1 or n_blocks < 0:
            raise ValueError("in_channels, out, dim, heads and patch_size must be >= 1, n_blocks >= 0")
        if height % patch_size or width % patch_size:
            raise ValueError(f"patch_size {patch_size} does not divide the image size {tuple(image_size)}")
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.in_channels, self.out, self.image_size, self.patch_size = in_channels, out, (height, width), patch_size
        self.dim, self.heads, self.mlp_dim, self.pool = dim, heads, mlp_dim or 2 * dim, pool
        self.activation_name = activation
        self.activation: Activation = get_activation(activation)
        self.n_tokens = (height // patch_size) * (width // patch_size) + (pool == "cls")
        self.patch = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim)) if pool == "cls" else None
        self.position = nn.Parameter(0.02 * torch.randn(1, self.n_tokens, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, self.mlp_dim) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x, (self.in_channels, *self.image_size))
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.position

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)
        return self.head(h[:, 0] if self.pool == "cls" else h.mean(dim=1))

    def operator(self) -> TokenOperator:
        return TokenOperator(self.n_tokens, self.dim)

    def check_block(self, block: nn.Module) -> None:
        kinds = (ResidualBlock, TwoWeightBlock, TransformerBlock)
        if type(block) not in kinds:
            raise TypeError(f"block must be a token-wise residual, two-weight or transformer block, "
                            f"got {type(block).__name__}")
        probe = next(block.parameters())
        if probe.shape[-1] != self.dim:
            raise ValueError(f"block width {probe.shape[-1]} does not match the token width {self.dim}")

    def architecture(self) -> dict:
        """Everything needed to rebuild this (possibly grown) network, as plain JSON data."""
        return {"in_channels": self.in_channels, "out": self.out, "image_size": list(self.image_size),
                "patch_size": self.patch_size, "dim": self.dim, "heads": self.heads, "mlp_dim": self.mlp_dim,
                "activation": self.activation_name, "pool": self.pool, "blocks": [b.spec() for b in self.blocks]}

    @classmethod
    def from_architecture(cls, arch: dict) -> "VisionTransformer":
        net = cls(arch["in_channels"], arch["out"], tuple(arch["image_size"]), arch["patch_size"], arch["dim"], 0,
                  arch["heads"], arch["mlp_dim"], arch["activation"], arch["pool"])
        for spec in arch["blocks"]:
            if spec["kind"] == TransformerBlock.kind:
                net.blocks.append(TransformerBlock(arch["dim"], spec["heads"], spec["mlp_dim"]))
            else:
                net.blocks.append(BLOCKS[spec["kind"]](arch["dim"], spec["activation"]))
        return net

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, tokens={self.n_tokens}, activation={self.activation_name!r}, "
                f"pool={self.pool!r}, blocks={[b.kind for b in self.blocks]}")
