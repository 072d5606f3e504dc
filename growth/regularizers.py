"""Regularizers of the layerwise method (Krishnanunni & Bui-Thanh, arXiv:2211.06860).

Each object has one job and returns a scalar tensor (already multiplied by its weight, where it
has one) that a training loss adds:

- :class:`Manifold`, Φm = (1/M²) Σ_ij β_ij ‖N(x_i) − N(x_j)‖², N a feature map (the hidden state
  after the newest block), with β from groups (:class:`Groups`: clusters, class labels, noisy copies
  of each input) or from a kernel on the inputs (:class:`Kernel`). Computed exactly, in O(M n) for
  groups and O(M² + M n) for a kernel, never with a Python loop over pairs.
- :class:`L1`, α Σ_p ‖p‖₁ over chosen parameters, and :func:`hard_threshold`, which sets every
  |w| ≤ tol to 0 and reports the active (non-zero) fraction per layer.
- :class:`PhysicsPenalty`, λ·fn(predictions, batch) with fn supplied by the problem: the engine
  knows nothing about PDEs.
- :class:`StageSchedule`, the per-stage weight γ_l = γ0 ρ^(l−2).

:func:`kmeans` (numpy, seeded) and :func:`noisy_copies` build the groups used in the sources.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "Groups", "Kernel", "Manifold", "L1", "hard_threshold", "active_fractions",
    "PhysicsPenalty", "StageSchedule", "kmeans", "noisy_copies",
]


class Groups:
    """β_ij = 1 when samples i and j carry the same group label, else 0.

    Exact pairwise sum without forming pairs, from the identity (ā_g the mean of group g)

        Σ_{i,j ∈ g} ‖a_i − a_j‖² = 2 |g| Σ_{i ∈ g} ‖a_i − ā_g‖²,

    so Σ_ij β_ij ‖a_i − a_j‖² = 2 Σ_g |g| Σ_{i∈g} ‖a_i − ā_g‖², computed with two scatter-adds.
    """

    def __init__(self, labels):
        labels = torch.as_tensor(np.asarray(labels)).long().reshape(-1)
        _, self.labels = torch.unique(labels, return_inverse=True)  # relabel to 0..G-1
        self.n_groups = int(self.labels.max()) + 1 if labels.numel() else 0

    def __len__(self) -> int:
        return self.labels.numel()

    def subset(self, index: Tensor) -> "Groups":
        return Groups(self.labels[index])

    def pairwise_sum(self, a: Tensor) -> Tensor:
        """Σ_ij β_ij ‖a_i − a_j‖² for features a of shape (M, n)."""
        labels = self.labels.to(a.device)
        counts = torch.bincount(labels, minlength=self.n_groups).to(a.dtype)
        sums = a.new_zeros(self.n_groups, a.shape[1]).index_add_(0, labels, a)
        means = sums / counts.clamp(min=1).unsqueeze(1)
        sq_dev = ((a - means[labels]) ** 2).sum(dim=1)  # ‖a_i − ā_{g(i)}‖²
        return 2.0 * (counts[labels] * sq_dev).sum()


class Kernel:
    """Dense similarity β (M×M), e.g. a Gaussian kernel on the inputs.

    Σ_ij β_ij ‖a_i − a_j‖² = Σ_i (r_i + c_i) ‖a_i‖² − 2 Σ_ij β_ij a_i·a_j, with r, c the row and
    column sums of β (for symmetric β this is 2 tr(Aᵀ (D − β) A), D = diag(r): the graph Laplacian).
    """

    def __init__(self, beta: Tensor):
        beta = torch.as_tensor(beta)
        if beta.ndim != 2 or beta.shape[0] != beta.shape[1]:
            raise ValueError(f"Kernel: beta must be square, got shape {tuple(beta.shape)}")
        self.beta = beta

    @classmethod
    def gaussian(cls, inputs: Tensor, bandwidth: float, k_nearest: int | None = None) -> "Kernel":
        """β_ij = exp(−‖x_i − x_j‖² / (2 h²)); with `k_nearest`, kept only where j is among the k
        nearest neighbours of i or i among those of j (symmetric kNN graph), else 0."""
        x = torch.as_tensor(inputs)
        d2 = torch.cdist(x, x) ** 2
        beta = torch.exp(-d2 / (2.0 * bandwidth ** 2))
        if k_nearest is not None:
            nearest = d2.topk(k_nearest + 1, dim=1, largest=False).indices  # includes i itself
            mask = torch.zeros_like(beta, dtype=torch.bool).scatter_(1, nearest, True)
            beta = beta * (mask | mask.T)
        return cls(beta)

    def __len__(self) -> int:
        return self.beta.shape[0]

    def subset(self, index: Tensor) -> "Kernel":
        return Kernel(self.beta[index][:, index])

    def pairwise_sum(self, a: Tensor) -> Tensor:
        beta = self.beta.to(device=a.device, dtype=a.dtype)
        sq = (a * a).sum(dim=1)
        degree = beta.sum(dim=1) + beta.sum(dim=0)
        return (degree * sq).sum() - 2.0 * (a * (beta @ a)).sum()


class Manifold:
    """Manifold regularizer Φm = (1/M²) Σ_ij β_ij ‖N(x_i) − N(x_j)‖² on a fixed point set x_1..x_M.

    `similarity` is a :class:`Groups` or :class:`Kernel` over those M points. Calling it with a
    feature map N (a callable inputs → (M, n) hidden states) returns Φm, unweighted: the stage weight
    γ_l comes from a :class:`StageSchedule`. With `subsample = m`, each call evaluates the exact Φm
    of m points drawn without replacement (seeded), for manifold sets too large for one pass.
    """

    def __init__(self, inputs: Tensor, similarity: Groups | Kernel, subsample: int | None = None,
                 seed: int = 0):
        self.inputs = torch.as_tensor(inputs)
        if len(similarity) != self.inputs.shape[0]:
            raise ValueError(f"Manifold: {self.inputs.shape[0]} inputs but similarity over "
                             f"{len(similarity)} points")
        self.similarity = similarity
        self.subsample = subsample
        self._generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_labels(cls, inputs, labels, **kw) -> "Manifold":
        """β_ij = 1 within a class (MNIST in the sources) or within any given grouping."""
        return cls(inputs, Groups(labels), **kw)

    @classmethod
    def from_clusters(cls, inputs, n_clusters: int = 5, seed: int = 0, **kw) -> "Manifold":
        """β_ij = 1 within a k-means cluster of the inputs (Boston in the sources: k = 5)."""
        labels = kmeans(np.asarray(torch.as_tensor(inputs).cpu()), n_clusters, seed=seed)
        return cls(inputs, Groups(labels), **kw)

    @classmethod
    def from_noisy_copies(cls, inputs, n_copies: int = 50, noise: float = 0.01, seed: int = 0,
                          **kw) -> "Manifold":
        """β_ij = 1 between noisy copies of the same input (inverse problems in the sources)."""
        x, groups = noisy_copies(inputs, n_copies, noise, seed)
        return cls(x, Groups(groups), **kw)

    @classmethod
    def from_kernel(cls, inputs, bandwidth: float, k_nearest: int | None = None, **kw) -> "Manifold":
        return cls(inputs, Kernel.gaussian(inputs, bandwidth, k_nearest), **kw)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __call__(self, feature_map: Callable[[Tensor], Tensor]) -> Tensor:
        x, sim = self.inputs, self.similarity
        if self.subsample is not None and self.subsample < len(self):
            index = torch.randperm(len(self), generator=self._generator)[: self.subsample]
            x, sim = x[index], sim.subset(index)
        return self.penalty(feature_map(x), sim)

    @staticmethod
    def penalty(features: Tensor, similarity: Groups | Kernel) -> Tensor:
        """Φm of given features a_i = N(x_i), shape (M, n): (1/M²) Σ_ij β_ij ‖a_i − a_j‖²."""
        features = features.reshape(features.shape[0], -1)
        return similarity.pairwise_sum(features) / features.shape[0] ** 2


class L1:
    """Sparsity penalty Φs = α Σ_p Σ_k |p_k| over the given parameters (the sources: the newest
    block's weights and biases, α = 0.05 for Boston)."""

    def __init__(self, weight: float):
        self.weight = weight

    def __call__(self, parameters: Iterable[Tensor]) -> Tensor:
        return self.weight * sum(p.abs().sum() for p in parameters)


@torch.no_grad()
def hard_threshold(layers: Mapping[str, nn.Module], tol: float = 1e-4) -> dict[str, float]:
    """Set every parameter entry with |w| ≤ tol to exactly 0, in place, in each named layer; return
    the active fraction (non-zero entries / all entries) per layer."""
    for module in layers.values():
        for p in module.parameters():
            p.masked_fill_(p.abs() <= tol, 0.0)
    return active_fractions(layers)


@torch.no_grad()
def active_fractions(layers: Mapping[str, nn.Module]) -> dict[str, float]:
    """Fraction of non-zero parameter entries per named layer."""
    out = {}
    for name, module in layers.items():
        params = list(module.parameters())
        total = sum(p.numel() for p in params)
        nonzero = sum(int(torch.count_nonzero(p)) for p in params)
        out[name] = nonzero / total if total else 0.0
    return out


class PhysicsPenalty:
    """Physics-informed penalty λ Φp, Φp = fn(predictions, batch) supplied by the problem, e.g. a
    finite-element residual Σ_i ((K û − F)_i)² in the sources; the engine only weights it. ``batch`` is
    (inputs, targets, rows): ``rows`` the batch's positions in the training set (None: all, in order)."""

    def __init__(self, fn: Callable[[Tensor, object], Tensor], weight: float):
        self.fn = fn
        self.weight = weight

    def __call__(self, predictions: Tensor, batch=None) -> Tensor:
        return self.weight * self.fn(predictions, batch)


@dataclass(frozen=True)
class StageSchedule:
    """γ_l = γ0 ρ^(l−2). Layers are counted as in the sources: l = 1 is the input layer, so the
    first residual block is l = 2 and gets γ0; block k has l = k + 1. ρ = 0.5 (Boston, MNIST),
    1.5 (heat inversion)."""

    gamma0: float
    rho: float

    def __call__(self, layer: int) -> float:
        return self.gamma0 * self.rho ** (layer - 2)

    def for_block(self, k: int) -> float:
        """Weight for the stage that trains residual block k (1-based)."""
        return self(k + 1)


def kmeans(x: np.ndarray, n_clusters: int, seed: int = 0, n_init: int = 10,
           max_iter: int = 300) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding, best of `n_init` restarts by inertia; deterministic
    for a seed. Returns integer labels in 0..n_clusters−1."""
    x = np.asarray(x, dtype=np.float64)
    if not 1 <= n_clusters <= len(x):
        raise ValueError(f"kmeans: n_clusters={n_clusters} for {len(x)} points")
    rng = np.random.RandomState(seed)
    best_labels, best_inertia = None, np.inf
    for _ in range(n_init):
        centers = _kmeans_pp(x, n_clusters, rng)
        for _ in range(max_iter):
            d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
            labels = d2.argmin(1)
            new = np.array([x[labels == c].mean(0) if np.any(labels == c) else centers[c]
                            for c in range(n_clusters)])
            if np.allclose(new, centers, rtol=0.0, atol=1e-12):
                break
            centers = new
        inertia = ((x - centers[labels]) ** 2).sum()
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return best_labels


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    centers = [x[rng.randint(len(x))]]
    for _ in range(1, k):
        d2 = ((x[:, None, :] - np.array(centers)[None]) ** 2).sum(-1).min(1)
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1.0 / len(x))
        centers.append(x[rng.choice(len(x), p=p)])
    return np.array(centers)


def noisy_copies(inputs, n_copies: int = 50, noise: float = 0.01, seed: int = 0):
    """Manifold set of `n_copies` noisy copies of each input, x̃ = x + noise·std(x)·ξ, ξ ~ N(0, I),
    std(x) the standard deviation of that input's own entries (the authors' code); returns
    (copies of shape (M·n_copies, d), group = index of the original input)."""
    x = torch.as_tensor(inputs)
    g = torch.Generator().manual_seed(seed)
    rep = x.repeat_interleave(n_copies, dim=0)
    scale = x.std(dim=1, keepdim=True).repeat_interleave(n_copies, dim=0)
    xi = torch.randn(rep.shape, generator=g, dtype=x.dtype)
    groups = torch.arange(x.shape[0]).repeat_interleave(n_copies)
    return rep + noise * scale * xi, groups
