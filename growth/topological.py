"""Topological derivative of the loss with respect to inserting a residual block (docs/methods.md §B).

Perturbation: between h_l and the rest of the network insert ``x + σ(ε(Φ x + b))`` with
σ(0) = σ'(0) = 0 ≠ σ''(0). Then ``δh_{s,l} = (ε²/2) σ''(0) (Φ h_{s,l} + b)² + O(ε³)`` (elementwise
square), and with ``λ_{s,l} = −∂J/∂h_{s,l}`` (J the mean loss over the S samples)

    J(ε) − J(0) = −(ε²/2) Σ_r φ_rᵀ Q_{l,r} φ_r + O(ε³),   Q_{l,r} = σ''(0) Σ_s λ_{s,l,r} h̃_{s,l} h̃_{s,l}ᵀ,

where φ_r is row r of Φ (augmented by b_r when ``bias=True``, then h̃ = [h; 1], otherwise h̃ = h).
Q_l = blockdiag_r(Q_{l,r}) is never formed: the n blocks (n×n, or (n+1)×(n+1)) are accumulated over
mini-batches as one matrix product ``Λᵀ (H ⊙ H)`` per chunk of samples (rows h_s ⊗ h_s; 2·S·n³
flops per location, at GEMM speed: faster in practice than gathering only the upper triangle), and
their eigenpairs come from one batched ``eigh`` (n⁴). The best unit direction is the
top eigenvector of the block with the largest eigenvalue: a single new neuron (row r*). The
authors' multi-neuron rule instead sums every eigenvector (over all blocks) whose eigenvalue is at
least ``ratio · λ_max`` and normalizes; the proposal's ``score`` is then that direction's Rayleigh
quotient ``φᵀ Q_l φ`` (the mean of the chosen eigenvalues), so that ``−(ε²/2)·score`` remains the
predicted change; locations are ranked by λ_max(Q_l). λ_max ≤ 0 at every location means no
second-order descent exists.

Subsampling (``subsample=k``). With J the mean of the per-sample losses ℓ_s, λ_{s,l} =
−(1/S) ∂ℓ_s/∂h_{s,l}, so Q_l = σ''(0) · (1/S) Σ_s g_s h̃_s h̃_sᵀ (g_s = −∂ℓ_s/∂h_{s,l}) is a sample
mean over the S training samples. Its estimate from k samples U drawn uniformly without
replacement, Q̂_l = σ''(0) · (1/k) Σ_{s∈U} g_s h̃_s h̃_sᵀ, is unbiased (E Q̂_l = Q_l) with entrywise
variance (1 − k/S) v / k (v the variance of the S summands, denominator S − 1; zero at k = S), and costs k/S
of the full pass. U is fixed by ``subsample_seed`` (``torch.randperm`` of a generator seeded with
it), the same for every location, so the locations are compared on the same samples. The default
``subsample=None`` (or k ≥ S) uses every sample. :mod:`growth.adaptive_td` chooses k itself
(``estimation="adaptive"`` or ``"auto"``): a doubling subset until the choice is certified.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from .adaptive_td import AdaptiveRule, adaptive_proposals, exact_cost_in_epochs
from .data import as_data, n_samples, take
from .growable import Location, check_growable, insert_residual, location_of
from .proposal import Proposal, states_and_adjoints

__all__ = ["check_td_activation", "subsample_rows", "selected_locations", "q_blocks", "top_direction",
           "topological_derivative", "line_search", "dense_q"]

_CHUNK = 256  # samples per product: bounds the (chunk, m²) intermediate (32 MiB at m = 128, float32)


def check_td_activation(net: nn.Module) -> float:
    """σ''(0) of the network's block activation; ValueError unless σ(0) = σ'(0) = 0 ≠ σ''(0)."""
    check_growable(net)
    act = net.activation
    if net.block_kind != "residual":
        raise ValueError("the topological derivative inserts residual blocks h + σ(εΦh); "
                         f"{type(net).__name__} grows blocks of kind {net.block_kind!r}")
    if not act.admits_topological_derivative:
        raise ValueError(f"the topological derivative needs σ(0) = σ'(0) = 0 ≠ σ''(0); activation "
                         f"{act.name!r} has σ(0) = {act.d0}, σ'(0) = {act.d1}, σ''(0) = {act.d2} "
                         "(use activation='td', σ = 2·SiLU − tanh)")
    return act.d2


def subsample_rows(n: int, subsample: Optional[int], seed: int = 0) -> Optional[torch.Tensor]:
    """Sorted indices of ``subsample`` of ``n`` rows, uniform without replacement and fixed by
    ``seed``; None (all rows) when ``subsample`` is None or at least ``n``."""
    if subsample is None or subsample >= n:
        return None
    if subsample < 1:
        raise ValueError(f"subsample must be a positive number of samples, got {subsample}")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:subsample].sort().values


def selected_locations(net: nn.Module, locations: Optional[Sequence[int]]) -> list[Location]:
    """The :class:`Location` objects of ``locations`` (indices; None: all), checked."""
    return net.locations() if locations is None else [location_of(net, l) for l in locations]


def q_blocks(net: nn.Module, loss_fn: Callable, inputs, targets: Optional[torch.Tensor] = None, *,
             bias: bool = False, locations: Optional[Sequence[int]] = None,
             batch_size: Optional[int] = None, subsample: Optional[int] = None,
             subsample_seed: int = 0, positions: Optional[int] = None) -> dict[int, torch.Tensor]:
    """``{l: Q_l}`` with ``Q_l`` of shape (n, m, m), ``Q_l[r] = Q_{l,r}``, n and m those of the
    location's operator (m + 1 with bias); rows of the operator as samples
    (:mod:`growth.operators`); from the ``subsample`` samples :func:`subsample_rows` picks (module
    docstring), all by default. ``positions=k``: of the R rows per sample (positions, tokens) only
    k, a uniform random subset without replacement fixed by ``subsample_seed`` and the same for
    every sample, each weighted R/k: unbiased, E Q̂_l = Q_l."""
    d2 = check_td_activation(net)
    data = as_data(inputs, targets)
    rows = subsample_rows(n_samples(data), subsample, subsample_seed)
    if rows is not None:
        data = take(data, rows)
    locs = selected_locations(net, locations)
    acc: dict[int, torch.Tensor] = {}
    for states, adjoints in states_and_adjoints(net, loss_fn, data, batch_size=batch_size):
        for loc in locs:
            op, l = loc.operator, loc.index
            h, lam = op.rows(states[l]), op.adjoint_rows(adjoints[l])
            keep = subsample_rows(h.shape[1], positions, subsample_seed)
            if keep is not None:
                keep = keep.to(h.device)
                h, lam = h[:, keep], lam[:, keep] * (h.shape[1] / len(keep))
            h, lam = h.reshape(-1, op.m), lam.reshape(-1, op.n)
            if bias:
                h = torch.cat([h, torch.ones_like(h[:, :1])], dim=1)
            if l not in acc:
                acc[l] = h.new_zeros(op.n, h.shape[1], h.shape[1])
            _accumulate(acc[l], h, lam, khatri_rao=op.m <= op.n)
    return {loc.index: d2 * acc[loc.index] for loc in locs}


def _accumulate(acc: torch.Tensor, h: torch.Tensor, lam: torch.Tensor, khatri_rao: bool) -> None:
    """``acc[r] += Σ_R λ_{R,r} h̃_R h̃_Rᵀ`` for rows h̃ (R, m) and adjoints λ (R, n), in chunks of rows.

    Both ways cost 2·R·n·m² flops; they differ in the intermediate they write: the Khatri–Rao
    product (rows h̃_R ⊗ h̃_R, one GEMM ``λᵀ (H ⊙ H)`` per chunk) writes R·m² numbers, the per-channel
    GEMMs ``(λ_r ⊙ H)ᵀ H`` write R·n·m. ``khatri_rao``: the first, for m ≤ n before the bias column
    (dense and token-wise layers); otherwise the second (a convolution: m = C k², n = C)."""
    n, m = lam.shape[1], h.shape[1]
    for i in range(0, h.shape[0], _CHUNK):
        hc, lc = h[i:i + _CHUNK], lam[i:i + _CHUNK]
        if khatri_rao:
            acc += (lc.T @ (hc[:, :, None] * hc[:, None, :]).reshape(-1, m * m)).view(n, m, m)
        else:
            acc += torch.bmm((lc.T[:, None, :] * hc.T[None]), hc.expand(n, -1, -1))


def top_direction(q: torch.Tensor, multi_neuron: bool = False, ratio: float = 0.5,
                  max_neurons: Optional[int] = None) -> tuple[torch.Tensor, float, float]:
    """(unit direction φ of shape (n, m), φᵀQφ, λ_max) from the blocks ``q`` (n, m, m).

    Eigenvalues of every block come from one batched ``eigvalsh``; eigenvectors are computed only
    for the blocks that contribute to φ (one block for a single neuron).
    """
    evals = torch.linalg.eigvalsh(q)  # (n, m), ascending per block
    n, m = evals.shape
    flat = evals.reshape(-1)
    lam_max = float(flat.max())
    if multi_neuron and lam_max > 0:
        chosen = torch.nonzero(flat >= ratio * lam_max).flatten()
        chosen = chosen[torch.argsort(flat[chosen], descending=True)][:max_neurons]
    else:
        chosen = torch.argmax(flat).reshape(1)
    rows = sorted({idx // m for idx in chosen.tolist()})
    vectors = dict(zip(rows, torch.linalg.eigh(q[rows])[1]))
    phi = q.new_zeros(n, m)
    for idx in chosen.tolist():
        r, k = divmod(idx, m)
        v = vectors[r][:, k]
        phi[r] += v * torch.sign(v[torch.argmax(v.abs())])  # fixed sign: largest entry positive
    phi /= torch.linalg.norm(phi)
    score = float(torch.einsum("ri,rij,rj->", phi, q, phi))
    return phi, score, lam_max


def topological_derivative(net: nn.Module, loss_fn: Callable, inputs, targets: Optional[torch.Tensor] = None, *,
                           locations: Optional[Sequence[int]] = None, multi_neuron: bool = False,
                           ratio: float = 0.5, max_neurons: Optional[int] = None, bias: bool = False,
                           eps: float = 1.0, batch_size: Optional[int] = None,
                           subsample: Optional[int] = None, subsample_seed: int = 0,
                           positions: Optional[int] = None, estimation: str = "exact",
                           rule: Optional[AdaptiveRule] = None) -> list[Proposal]:
    """One :class:`Proposal` per location (all by default), from one forward + backward pass per batch;
    the data are ``inputs, targets`` tensors or a Dataset/DataLoader as ``inputs`` (:mod:`growth.data`).

    ``weight`` (and ``bias`` with ``bias=True``) is the unit direction φ, ``score = φᵀ Q_l φ``,
    ``eigenvalue = λ_max(Q_l)``, ``predicted_decrease = eps²/2 · score`` for the given ``eps``
    (choose ε with :func:`line_search`). ``multi_neuron``/``ratio``/``max_neurons``: the authors'
    rule (eigenvectors with eigenvalue ≥ ratio·λ_max, at most ``max_neurons``). ``subsample``,
    ``subsample_seed``: estimate Q_l from a fixed random subset of the samples (module docstring);
    ``positions``: and of the rows (positions, tokens) per sample (:func:`q_blocks`).
    ``estimation``: ``"exact"``; ``"adaptive"`` (:mod:`growth.adaptive_td` with ``rule``, default
    :class:`AdaptiveRule`: a growing random subset until the choice is certified; the exact blocks
    when that would take every sample); ``"auto"``: adaptive when :func:`exact_cost_in_epochs`
    exceeds 0.5 and neither ``subsample`` nor the multi-neuron rule is asked for, else exact.
    ``proposal.estimate`` records the method, the samples used and (adaptive) the uncertainty.
    """
    data = as_data(inputs, targets)
    fixed_subset = subsample is not None or positions is not None
    if _adaptive(net, estimation, multi_neuron, fixed_subset, bias, locations):
        adaptive = adaptive_proposals(net, loss_fn, data, d2=check_td_activation(net), bias=bias,
                                      locations=locations, batch_size=batch_size, eps=eps,
                                      rule=rule or AdaptiveRule())
        if adaptive is not None:
            return adaptive
    total = n_samples(data)
    used = {"method": "exact", "k": min(subsample or total, total)}
    operators = {loc.index: loc.operator for loc in selected_locations(net, locations)}
    proposals = []
    for l, q in q_blocks(net, loss_fn, data, bias=bias, locations=locations,
                         batch_size=batch_size, subsample=subsample, subsample_seed=subsample_seed,
                         positions=positions).items():
        phi, score, lam_max = top_direction(q, multi_neuron, ratio, max_neurons)
        w, b = operators[l].split(phi, bias)
        proposals.append(Proposal(location=l, score=score, weight=w, bias=b, eps=eps,
                                  predicted_decrease=0.5 * eps ** 2 * score, eigenvalue=lam_max, estimate=used))
    return proposals


def _adaptive(net: nn.Module, estimation: str, multi_neuron: bool, fixed_subset: bool, bias: bool,
              locations: Optional[Sequence[int]]) -> bool:
    """Whether :func:`topological_derivative` tries the adaptive estimator (its ``estimation``)."""
    if estimation not in ("exact", "adaptive", "auto"):
        raise ValueError(f"estimation must be 'exact', 'adaptive' or 'auto', got {estimation!r}")
    if estimation == "adaptive" and (multi_neuron or fixed_subset):
        raise ValueError("the adaptive estimate certifies one neuron from its own subsets: "
                         "it excludes multi_neuron, subsample and positions")
    return estimation == "adaptive" or (estimation == "auto" and not multi_neuron and not fixed_subset
                                        and exact_cost_in_epochs(net, locations, bias) > 0.5)


def line_search(net: nn.Module, proposal: Proposal, loss: Callable[[nn.Module], float], *,
                step: float = 0.1, max_steps: int = 100, min_step: float = 1e-4
                ) -> tuple[Optional[Proposal], float]:
    """Insert ``proposal`` into ``net`` at the ε that the authors' line search picks.

    ε = step, 2·step, ... while the loss ``loss(net)`` keeps decreasing (at most ``max_steps``);
    if already ε = step does not decrease it, the step is halved (down to ``min_step``). Returns
    (proposal at the chosen ε, its loss); if no ε decreases the loss, the block is removed again
    and (None, loss before) is returned.
    """
    block = insert_residual(net, proposal.location)
    base = loss(net)

    def set_eps(eps):
        with torch.no_grad():
            block.set_parameters(eps * proposal.weight, None if proposal.bias is None else eps * proposal.bias)

    best_eps, best = 0.0, base
    while step >= min_step and best_eps == 0.0:
        for k in range(1, max_steps + 1):
            set_eps(k * step)
            value = loss(net)
            if value >= best:
                break
            best_eps, best = k * step, value
        step /= 2
    if best_eps == 0.0:
        net.remove_block(proposal.location)
        return None, base
    set_eps(best_eps)
    return proposal.with_eps(best_eps), best


def dense_q(blocks: torch.Tensor) -> torch.Tensor:
    """The dense (n·m)×(n·m) matrix Q_l = blockdiag_r(Q_{l,r}) as the authors' code forms it
    (reference for tests and benchmarks only: O(n⁶) to eigendecompose)."""
    return torch.block_diag(*blocks)
