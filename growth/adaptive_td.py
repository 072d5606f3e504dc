"""Adaptive estimation of the topological derivative: the best insertion from a growing random subset.

Q_l is a sample mean (:mod:`growth.topological`): with per-sample *factors* — rows h̃_R (the state,
augmented by 1 with bias) and weights w_{R,r} = σ''(0)·g_{R,r} (g = −∂ℓ_s/∂h, ℓ_s the loss of the
sample s that owns row R) —

    Q_{l,r} = (1/S) Σ_s Σ_{R ∈ s} w_{R,r} h̃_R h̃_Rᵀ.

A dense layer has one row per sample; a convolution or a token mixer has one per position, which is
why the interface (:class:`QSource`) speaks of rows with an owner sample: the estimator below serves
any insertion operator that can produce these factors for a subset of the samples.

**Estimation by doubling.** Samples are visited in a random order π (seeded); the subset doubles
every round (k_0, 2k_0, 4k_0, ...). The top eigenpair of every block is computed matrix-free by Lanczos
(:func:`lanczos_top`, one matrix product H̃ V per iteration: 4·k·n·m flops, instead of forming the
blocks at 2·k·n·m² plus n·m³ for their eigendecomposition). The candidate of a location is the top
Ritz vector φ (one new neuron) of its block with the largest Ritz value θ.

**Stopping rule (cross-fitting).** Round j has seen the first half A (k samples) and takes a fresh
half B (the next k). The candidate φ_A (location, neuron, unit vector: the top Ritz pair of the best
block on A) is scored on B, which it has never seen: with c_s(φ) = Σ_{R∈s} w_{R,r}(φ_r·h̃_R)² (the
per-sample Rayleigh quotients, whose mean is φᵀQ̂φ),

* r = mean_B c_s(φ_A) is an unbiased estimate of the decrease coefficient φ_AᵀQφ_A, standard error
  se_r = sd_B(c)/√k (the per-sample variance that a sample mean gives for free);
* the regret D = (θ_B + ρ_B) − r, θ_B the largest Ritz value over all locations and blocks on B and
  ρ_B its Lanczos residual, overestimates λ* − φ_AᵀQφ_A on average (λ_max(Q̂_B) ≥ φ*ᵀQ̂_Bφ*, an
  unbiased estimate of λ* = max_l λ_max(Q_l)); its fluctuation is that of the *paired* difference
  mean_B(c(φ_B) − c(φ_A)), se_D = sd_B(c(φ_B) − c(φ_A))/√k — small when φ_A and φ_B are the same
  neuron, large when the choice is still open.

The rule stops when 1 − (D + z·se_D)/(r − z·se_r) ≥ 1 − ``tolerance`` (z = ``confidence``): the
exact Rayleigh quotient of φ_A is then at least (1 − tolerance)·λ* — at least that share of the best
second-order decrease over every location and direction — unless one of the two one-sided bounds
fails (each with probability ≈ Φ(−z)). The certified φ_A itself is inserted; the log records k (both
halves), r, se_r and the bound. Otherwise A ∪ B becomes the next A (Lanczos warm-started from the
previous vectors) and the next k samples are fetched. If that would need all S samples (2k ≥ S),
the estimator gives up and the caller computes the exact blocks, so that with small data the result
is the exact computation bit for bit.

*What is certified, and why.* The rule certifies the *efficiency* (the gap to the best insertion),
not the absolute decrease to ±tolerance: at a trained network the per-sample terms c_s have a
coefficient of variation of ≈ 2.3 (g_s averages to ≈ 0 at a stationary point), so a ±5 % interval
at z = 2 would need ≈ 34,000 samples per half, more than most data sets; the gap instead is a paired
difference of nearly identical terms once the choice has settled. "The ranking of locations is
settled" is read in the same sense: a location whose exact λ_max is within the tolerance of the best
is an acceptable choice (two locations within 1 % of each other would never be told apart). se_r is
logged as the uncertainty of the predicted decrease; the ε line search then measures the actual one.

The estimator handles the single-neuron rule; the authors' multi-neuron rule (sums of eigenvectors)
needs every large eigenpair of every block and stays exact.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

import torch
from torch import nn

from .data import as_data, n_samples, take
from .proposal import Proposal, states_and_adjoints

__all__ = ["Factors", "QSource", "OperatorQSource", "AdaptiveRule", "AdaptiveEstimate", "lanczos_top",
           "exact_cost_in_epochs", "adaptive_estimate", "adaptive_proposals"]


@dataclass
class Factors:
    """Per-row factors of Q at one location: ``states`` (R, m) = h̃_R, ``weights`` (R, n) = σ''(0)·g_R;
    ``owner`` (R,) the position of the owning sample in the requested subset (None: row i is sample i)."""

    states: torch.Tensor
    weights: torch.Tensor
    owner: Optional[torch.Tensor] = None

    def per_sample(self, values: torch.Tensor, n_samples: int) -> torch.Tensor:
        """Sum of per-row ``values`` over each sample's rows: (n_samples,)."""
        if self.owner is None:
            return values
        return values.new_zeros(n_samples).index_add_(0, self.owner, values)


class QSource(Protocol):
    """What the estimator needs from an insertion operator: ``n_samples`` (S), ``locations`` and
    ``factors(rows)`` — ``{location: Factors}`` of the samples ``rows`` (an index tensor)."""

    n_samples: int
    locations: list[int]

    def factors(self, rows: torch.Tensor) -> dict[int, Factors]:
        ...


class OperatorQSource:
    """Factors of a growable network at its locations: the rows h̃_R of each location's insertion
    operator (:mod:`growth.operators`; one per sample for a dense layer, one per position or token
    otherwise), h̃ = [h̃; 1] with ``bias``, and g_R = −∂ℓ_s/∂h at the row, from one forward and backward
    pass per mini-batch."""

    def __init__(self, net: nn.Module, loss_fn: Callable, inputs, targets: Optional[torch.Tensor] = None, *,
                 d2: float, bias: bool = False, locations: Optional[Sequence[int]] = None,
                 batch_size: Optional[int] = None):
        self.net, self.loss_fn, self.data = net, loss_fn, as_data(inputs, targets)
        self.d2, self.bias, self.batch_size = d2, bias, batch_size
        self.n_samples = n_samples(self.data)
        self.device = net.reference_parameter().device
        all_locations = net.locations()
        self.operators = {l: all_locations[l].operator
                          for l in (range(len(all_locations)) if locations is None else locations)}
        self.locations = list(self.operators)

    def factors(self, rows: torch.Tensor) -> dict[int, Factors]:
        states: dict[int, list] = {l: [] for l in self.locations}
        weights: dict[int, list] = {l: [] for l in self.locations}
        # λ = −∂J/∂h with J the mean over the subset, so g_s = |rows|·λ_s
        for hs, lams in states_and_adjoints(self.net, self.loss_fn, take(self.data, rows),
                                            batch_size=self.batch_size):
            for l, op in self.operators.items():
                h = op.rows(hs[l]).reshape(-1, op.m)
                states[l].append(torch.cat([h, torch.ones_like(h[:, :1])], 1) if self.bias else h)
                weights[l].append(op.adjoint_rows(lams[l]).reshape(-1, op.n) * (self.d2 * len(rows)))
        return {l: Factors(torch.cat(states[l]), torch.cat(weights[l]), self._owner(l, len(rows)))
                for l in self.locations}

    def _owner(self, l: int, k: int) -> Optional[torch.Tensor]:
        """Row R's sample (its position among the k requested), or None with one row per sample."""
        per = self.operators[l].rows_per_sample
        return None if per == 1 else torch.arange(k, device=self.device).repeat_interleave(per)


@dataclass
class AdaptiveRule:
    """``tolerance``: the promised efficiency is 1 − tolerance; ``confidence``: z of the one-sided
    bounds; ``initial``: k_0; ``lanczos_steps``/``warm_steps``: Lanczos iterations from a random start
    and from the previous round's vectors; ``seed``: the sample order π and the Lanczos starts."""

    tolerance: float = 0.05
    confidence: float = 2.0
    initial: int = 256
    lanczos_steps: int = 24
    warm_steps: int = 12
    seed: int = 0


@dataclass
class AdaptiveEstimate:
    """The certified candidate: ``location``, ``row`` (the new neuron), ``vector`` (m,) unit;
    ``score`` r (held-out estimate of φᵀQφ) and its standard error; ``k`` samples touched (both
    halves); ``rounds``; ``efficiency``: the certified lower bound of φᵀQφ / max_l λ_max(Q_l);
    ``locations``: every location's (block, unit vector, largest Ritz value θ_l) on the first half."""

    location: int
    row: int
    vector: torch.Tensor
    score: float
    score_error: float
    k: int
    rounds: int
    efficiency: float
    locations: dict

    def record(self) -> dict:
        """The JSON-able log entry."""
        return {"method": "adaptive", "k": self.k, "rounds": self.rounds, "score": self.score,
                "score_error": self.score_error, "efficiency_bound": self.efficiency}


def _matvec(factors: Factors, v: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Q̂_r v_r for every block r at once: (1/k) Σ_R w_{R,r} (h̃_R·v_r) h̃_R, shape (n, m)."""
    h = factors.states
    return (factors.weights * (h @ v.T)).T @ h / n_samples


def lanczos_top(matvec: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, steps: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top Ritz pair of n symmetric m×m blocks at once, given ``matvec(V)`` = (A_r v_r)_r for V (n, m).

    Lanczos with full reorthogonalization for ``min(steps, m)`` iterations from ``start`` (n, m);
    an invariant subspace (β ≈ 0) restarts with a random vector orthogonal to the basis, so every
    Ritz value is a Rayleigh quotient of its block. Returns θ (n,), unit vectors (n, m) and the
    residual norms ‖A_r y_r − θ_r y_r‖ (n,): some eigenvalue of A_r lies within it of θ_r.
    """
    n, m = start.shape
    p = min(steps, m)
    basis = start.new_zeros(p, n, m)
    alpha, beta = start.new_zeros(p, n), start.new_zeros(p, n)
    v = start / start.norm(dim=1, keepdim=True).clamp_min(torch.finfo(start.dtype).tiny)
    for j in range(p):
        basis[j] = v
        w = matvec(v)
        alpha[j] = (w * v).sum(1)
        for _ in range(2):  # twice is enough (Kahan–Parlett)
            w = w - torch.einsum("jn,jnm->nm", torch.einsum("jnm,nm->jn", basis[:j + 1], w), basis[:j + 1])
        beta[j] = w.norm(dim=1)
        dead = beta[j] <= 1e-6 * alpha[:j + 1].abs().amax(0).clamp_min(1e-30)
        if bool(dead.any()) and j + 1 < p:
            fresh = torch.randn(n, m, generator=generator, dtype=torch.float64).to(w)
            fresh -= torch.einsum("jn,jnm->nm", torch.einsum("jnm,nm->jn", basis[:j + 1], fresh), basis[:j + 1])
            w = torch.where(dead[:, None], fresh, w)
            beta[j] = torch.where(dead, 0.0, beta[j])
        v = w / w.norm(dim=1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    t = torch.diag_embed(alpha.T.double()) + torch.diag_embed(beta[:-1].T.double(), 1) + \
        torch.diag_embed(beta[:-1].T.double(), -1)
    evals, evecs = torch.linalg.eigh(t)
    theta, y = evals[:, -1], evecs[:, :, -1]
    vectors = torch.einsum("jnm,nj->nm", basis, y.to(basis))
    vectors /= vectors.norm(dim=1, keepdim=True)
    residual = (beta[-1].double() * y[:, -1]).abs()
    return theta.to(start.dtype), vectors, residual.to(start.dtype)


def exact_cost_in_epochs(net: nn.Module, locations: Optional[Sequence[int]] = None, bias: bool = False) -> float:
    """Flop model of the exact blocks against one training epoch, independent of S: forming the n
    blocks (m features per row, +1 with bias; R rows per sample) costs 2·S·R·n·m² per location
    (:meth:`~growth.operators.InsertionOperator.flops_per_sample`), an epoch ≈ 6·S·P (forward 2P,
    backward 4P per sample, P the number of weights)."""
    all_locations = net.locations()
    chosen = all_locations if locations is None else [all_locations[l] for l in locations]
    weights = sum(p.numel() for p in net.parameters())
    return sum(loc.operator.flops_per_sample(bias) for loc in chosen) / (6 * weights)


@dataclass
class _Blocks:
    """Top Ritz value, vector and residual norm of every block of one location (n,), (n, m), (n,)."""

    theta: torch.Tensor
    vectors: torch.Tensor
    residual: torch.Tensor


def _lanczos(factors: Factors, n_samples: int, start: Optional[torch.Tensor], steps: int,
             generator: torch.Generator) -> _Blocks:
    n, m = factors.weights.shape[1], factors.states.shape[1]
    if start is None:
        start = torch.randn(n, m, generator=generator, dtype=torch.float64).to(factors.states)
    return _Blocks(*lanczos_top(lambda v: _matvec(factors, v, n_samples), start, steps, generator))


def _sample_values(factors: Factors, row: int, vectors: torch.Tensor, n_samples: int) -> torch.Tensor:
    """c_s = Σ_{R∈s} w_{R,r} (v·h̃_R)² per sample and vector, (k, B), for block r = ``row`` and the
    B unit vectors ``vectors`` (B, m); their mean over the samples is vᵀQ̂_r v."""
    values = factors.weights[:, row, None] * (factors.states @ vectors.T) ** 2
    if factors.owner is None:
        return values
    return values.new_zeros(n_samples, values.shape[1]).index_add_(0, factors.owner, values)


def _top(blocks: dict[int, _Blocks]) -> tuple[int, int]:
    """(location, block) of the largest Ritz value."""
    pairs = [(l, int(torch.argmax(b.theta))) for l, b in blocks.items()]
    return max(pairs, key=lambda c: float(blocks[c[0]].theta[c[1]]))


def _unit(blocks: _Blocks, row: int) -> torch.Tensor:
    v = blocks.vectors[row]
    return v * torch.sign(v[torch.argmax(v.abs())])  # fixed sign: largest entry positive


def _certificate(fresh: dict[int, Factors], k: int, chosen: tuple[int, int], candidate: torch.Tensor,
                 held: dict[int, _Blocks], z: float) -> tuple[float, float, float]:
    """(efficiency bound, r, se_r) of the candidate (location, block, unit vector) chosen on the first
    half, from the fresh half's factors and top Ritz pairs ``held`` (module docstring)."""
    (l, r), (lb, rb) = chosen, _top(held)
    mine = _sample_values(fresh[l], r, candidate[None], k)[:, 0].double()
    theirs = _sample_values(fresh[lb], rb, held[lb].vectors[rb][None], k)[:, 0].double()
    score, score_error = float(mine.mean()), float(mine.std() / math.sqrt(k))
    regret = float(held[lb].theta[rb] + held[lb].residual[rb]) - score
    regret_error = float((theirs - mine).std() / math.sqrt(k))
    floor = score - z * score_error
    bound = 1 - (max(regret, 0.0) + z * regret_error) / floor if floor > 0 else -math.inf
    return bound, score, score_error


def adaptive_estimate(source: QSource, rule: AdaptiveRule = AdaptiveRule()) -> Optional[AdaptiveEstimate]:
    """The insertion candidate from the smallest doubling subset whose choice is certified (module
    docstring), or None when that would take every sample (then compute the exact blocks)."""
    total, k = source.n_samples, rule.initial
    if 2 * k >= total:
        return None
    order = torch.randperm(total, generator=torch.Generator().manual_seed(rule.seed))
    generator = torch.Generator().manual_seed(rule.seed + 1)
    seen = source.factors(order[:k])
    blocks = {l: _lanczos(seen[l], k, None, rule.lanczos_steps, generator) for l in source.locations}
    for rounds in itertools.count(2):
        if 2 * k >= total:
            return None
        fresh = source.factors(order[k:2 * k])
        held = {l: _lanczos(fresh[l], k, None, rule.lanczos_steps, generator) for l in source.locations}
        chosen = _top(blocks)
        candidate = _unit(blocks[chosen[0]], chosen[1])
        bound, score, error = _certificate(fresh, k, chosen, candidate, held, rule.confidence)
        if bound >= 1 - rule.tolerance:
            tops = {l: (int(b.theta.argmax()), _unit(b, int(b.theta.argmax())), float(b.theta.max()))
                    for l, b in blocks.items()}
            return AdaptiveEstimate(chosen[0], chosen[1], candidate, score, error, 2 * k, rounds, bound, tops)
        seen = {l: _concat(seen[l], fresh[l], k) for l in source.locations}
        k *= 2
        blocks = {l: _lanczos(seen[l], k, blocks[l].vectors, rule.warm_steps, generator) for l in source.locations}
    return None


def _concat(a: Factors, b: Factors, offset: int) -> Factors:
    owner = None if a.owner is None else torch.cat([a.owner, b.owner + offset])
    return Factors(torch.cat([a.states, b.states]), torch.cat([a.weights, b.weights]), owner)


def adaptive_proposals(net: nn.Module, loss_fn: Callable, inputs, targets: Optional[torch.Tensor] = None, *,
                       d2: float, bias: bool, locations: Optional[Sequence[int]], batch_size: Optional[int],
                       eps: float, rule: AdaptiveRule) -> Optional[list[Proposal]]:
    """:func:`adaptive_estimate` of a growable network as one :class:`Proposal` per location,
    or None (compute the exact blocks). ``eigenvalue`` is θ_l (largest Ritz value on the first half,
    so the largest marks the certified location); ``score`` is the held-out r at the certified
    location and θ_l elsewhere; the certified proposal carries ``estimate``, the log entry."""
    source = OperatorQSource(net, loss_fn, inputs, targets, d2=d2, bias=bias, locations=locations,
                          batch_size=batch_size)
    result = adaptive_estimate(source, rule)
    if result is None:
        return None
    proposals = []
    for l, (row, vector, theta) in result.locations.items():
        phi = vector.new_zeros(source.operators[l].n, vector.shape[0])
        phi[row] = vector
        w, b = source.operators[l].split(phi, bias)
        certified = l == result.location
        score = result.score if certified else theta
        proposals.append(Proposal(location=l, score=score, weight=w, bias=b, eps=eps,
                                  predicted_decrease=0.5 * eps ** 2 * score, eigenvalue=theta,
                                  estimate=result.record() if certified else None))
    return proposals
