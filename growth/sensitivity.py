"""Sensitivity-based layer insertion, SensLI (docs/methods.md §C).

A *virtual* block at location l, held at function-preserving values, changes nothing; the
Lagrange multiplier of the constraint "θ_new = its preserving value" is −∂J/∂θ_new, so
``‖∂J/∂θ_new‖²`` is the first-order decrease available from freeing that block. With
``λ_{s,l} = −∂J/∂h_{s,l}`` of the real network (J the mean loss) the gradients are closed forms,
so one forward + backward pass of the real network gives every score (no doubled network):

* ``"two_weight"``: ``x + W2 σ(W1 x + b)`` at ``W1 = 0.8·I, b = 0, W2 = 0`` (any σ):
  ``∂J/∂W2 = −Σ_s λ_s σ(0.8 h_s)ᵀ`` (∂J/∂W1 = ∂J/∂b = 0 because W2 = 0), score ``‖∂J/∂W2‖²_F``;
* ``"one_weight"``: ``x + σ(W x + b)`` at ``W = b = 0`` (needs σ(0) = 0 ≠ σ'(0)):
  ``∂J/∂W = −σ'(0) Σ_s λ_s h_sᵀ``, ``∂J/∂b = −σ'(0) Σ_s λ_s``, score ``‖∂J/∂W‖² + ‖∂J/∂b‖²``.

These are the dense formulas; for any insertion operator (:mod:`growth.operators`) the sums run over
the operator's rows (positions, tokens) as extra samples: ``∂J/∂W2 = −Σ_{s,q} λ_{s,q} ⊗ h̃_{s,q}`` with
h̃ the rows of σ(0.8 h) (two-weight; W1 = 0.8 times the identity map, e.g. a centred 0.8-delta
kernel) or of h (one-weight), and ``∂J/∂b = −σ'(0) Σ_{s,q} λ_{s,q}``.

The proposal inserts the block at those function-preserving values (the score only picks the
location); ``predicted_decrease`` is 0. :func:`sensitivity_scores_reference` computes the same
scores the authors' way, by autograd on an explicitly extended network (tests and benchmarks).
"""
from __future__ import annotations

import copy
from typing import Callable, Optional

import torch
from torch import nn

from .data import as_data, batches, n_samples
from .growable import Location, check_growable, like
from .proposal import Proposal, states_and_adjoints

__all__ = ["sensitivity_scores", "sensitivity_scores_reference", "check_sensitivity", "W1_SCALE"]

W1_SCALE = 0.8
KINDS = ("two_weight", "one_weight")


def check_sensitivity(net: nn.Module, kind: str) -> None:
    """ValueError unless the SensLI virtual block ``kind`` can be used on ``net``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    check_growable(net)
    act = net.activation
    if kind == "one_weight" and (act.d0 != 0.0 or act.d1 == 0.0):
        raise ValueError(f"the one-weight SensLI block needs σ(0) = 0 ≠ σ'(0); activation {act.name!r} "
                         f"has σ(0) = {act.d0}, σ'(0) = {act.d1} (use kind='two_weight', or elu/tanh)")
    if kind == "one_weight" and net.block_kind != "residual":
        raise ValueError("the one-weight SensLI block is a residual block; this network grows "
                         f"{net.block_kind!r} blocks")


def _proposal(net: nn.Module, location: Location, score: float, kind: str) -> Proposal:
    w1 = location.operator.identity_weight(W1_SCALE, **like(net)) if kind == "two_weight" else None
    return Proposal(location=location.index, score=score, weight=w1, predicted_decrease=0.0,
                    kind="two_weight" if kind == "two_weight" else "residual")


def sensitivity_scores(net: nn.Module, loss_fn: Callable, inputs, targets: Optional[torch.Tensor] = None, *,
                       kind: str = "two_weight", include_bias: bool = True,
                       batch_size: Optional[int] = None) -> list[Proposal]:
    """One :class:`Proposal` per location, score ``‖∂J/∂θ_virtual‖²`` (see the module docstring);
    the data are ``inputs, targets`` tensors or a Dataset/DataLoader as ``inputs`` (:mod:`growth.data`).

    ``include_bias`` (one-weight only) adds the bias gradient to the score, as the authors do.
    """
    check_sensitivity(net, kind)
    act, d1 = net.activation, net.activation.d1
    locations = net.locations()
    grads: list = [None] * len(locations)
    bias_grads: list = [None] * len(locations)
    for states, adjoints in states_and_adjoints(net, loss_fn, inputs, targets, batch_size):
        for loc, h, lam in zip(locations, states, adjoints):
            op, l = loc.operator, loc.index
            lam = op.adjoint_rows(lam).reshape(-1, op.n)
            g = lam.T @ op.rows(act(W1_SCALE * h) if kind == "two_weight" else h).reshape(-1, op.m)
            grads[l] = g if grads[l] is None else grads[l] + g
            gb = lam.sum(0)
            bias_grads[l] = gb if bias_grads[l] is None else bias_grads[l] + gb
    proposals = []
    for loc in locations:
        l = loc.index
        if kind == "two_weight":
            score = float(grads[l].square().sum())
        else:
            score = d1 ** 2 * float(grads[l].square().sum() + include_bias * bias_grads[l].square().sum())
        proposals.append(_proposal(net, loc, score, kind))
    return proposals


def sensitivity_scores_reference(net: nn.Module, loss_fn: Callable, inputs, targets: Optional[torch.Tensor] = None,
                                 *, kind: str = "two_weight", include_bias: bool = True,
                                 batch_size: Optional[int] = None) -> list[Proposal]:
    """The same scores by autograd on a copy of ``net`` with a virtual block at every location
    (the authors' doubled network). For verification and benchmarks."""
    check_sensitivity(net, kind)
    ext = copy.deepcopy(net)
    virtual = {}
    options, act = like(net), net.activation.name
    locations = net.locations()
    for loc in reversed(locations):  # inserting from the end keeps the numbering valid
        op = loc.operator
        if kind == "two_weight":
            block = op.two_weight_block(act, op.identity_weight(W1_SCALE, **options), **options)
        else:
            block = op.block(act, **options)
        virtual[loc.index] = ext.insert_block(loc.index, block=block)
    ext.zero_grad(set_to_none=True)
    data = as_data(inputs, targets)
    n = n_samples(data)
    for xb, yb in batches(data, batch_size, net.reference_parameter().device):
        (loss_fn(ext(xb), yb) * (xb.shape[0] / n)).backward()
    proposals = []
    for loc in locations:
        weight, bias = virtual[loc.index].scored_parameters()
        if kind == "two_weight":
            score = float(weight.grad.square().sum())
        else:
            score = float(weight.grad.square().sum() + include_bias * bias.grad.square().sum())
        proposals.append(_proposal(net, loc, score, kind))
    return proposals

