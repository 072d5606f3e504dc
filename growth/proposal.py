"""Growth proposals and the adjoint pass that both insertion criteria are built on.

Adjoints: with ``J`` the mean loss over all S samples and ``h_{s,l}`` the state of sample s at
location l, ``λ_{s,l} = −∂J/∂h_{s,l}`` (docs/methods.md notation). :func:`states_and_adjoints` gets every
``h_l`` and ``λ_l`` from one forward and one backward pass per mini-batch: a location hook adds a
zero "probe" tensor ``z_l`` to each state (``h + 0`` is ``h`` exactly) and ``∂J/∂z_l = ∂J/∂h_l``.
This works with frozen parameters and needs no ``retain_grad``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional

import torch
from torch import nn

from .data import as_data, batches, n_samples
from .growable import insert_residual, like, location_of

__all__ = ["Proposal", "states_and_adjoints", "apply_proposal"]


@dataclass(frozen=True)
class Proposal:
    """One candidate growth step.

    ``location``: where the block goes (``net.insert_block(location, ...)``); ``score``: the
    method's score (topological derivative: ``φᵀ Q_l φ`` of the proposed unit direction, equal to the
    top eigenvalue of Q_l for a single neuron; SensLI: ``‖∂J/∂θ_new‖²``); ``weight``/``bias``: the
    direction (TD: ‖weight‖²_F + ‖bias‖² = 1, bias None without bias augmentation) or, for
    ``kind="two_weight"``, the first weight ``W1`` of the function-preserving block; ``eps``: the
    step the weights are scaled by; ``predicted_decrease``: the predicted ``J(before) − J(after)``
    at ``eps`` (TD: ``eps²/2 · score``; SensLI: 0, its insertion preserves the function);
    ``eigenvalue``: TD only, λ_max(Q_l), used to rank locations; ``kind``: the block kind inserted;
    ``estimate``: TD only, how Q_l was estimated (JSON-able: method, samples k, uncertainty).
    """

    location: int
    score: float
    weight: Optional[torch.Tensor]
    predicted_decrease: float
    bias: Optional[torch.Tensor] = None
    eps: float = 1.0
    eigenvalue: float = float("nan")
    kind: str = "residual"
    estimate: Optional[dict] = None

    def with_eps(self, eps: float) -> "Proposal":
        """The same direction at step ``eps`` (TD: the prediction scales like eps²)."""
        scale = (eps / self.eps) ** 2 if self.kind == "residual" else 0.0
        return replace(self, eps=eps, predicted_decrease=self.predicted_decrease * scale)


def apply_proposal(net: nn.Module, proposal: Proposal) -> nn.Module:
    """Insert the block that ``proposal`` describes into ``net`` (its location's operator builds it);
    returns the new block."""
    if proposal.kind == "two_weight":
        operator = location_of(net, proposal.location).operator
        block = operator.two_weight_block(net.activation.name, weight=proposal.weight, **like(net))
        return net.insert_block(proposal.location, block=block)
    scale = lambda t: None if t is None else proposal.eps * t  # noqa: E731
    return insert_residual(net, proposal.location, scale(proposal.weight), scale(proposal.bias))


def states_and_adjoints(net: nn.Module, loss_fn: Callable, inputs, targets: Optional[torch.Tensor] = None,
                        batch_size: Optional[int] = None
                        ) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Yield ``(states, adjoints)`` per mini-batch: lists over locations of ``h_l`` and
    ``λ_l = −∂J/∂h_l`` (the shape of the state, detached), J the mean loss over *all* samples,
    so sums over the batches of per-sample terms are sums over the whole data set. The data are
    ``inputs, targets`` tensors or a Dataset/DataLoader as ``inputs`` (:mod:`growth.data`)."""
    data = as_data(inputs, targets)
    n = n_samples(data)
    for xb, yb in batches(data, batch_size, net.reference_parameter().device):
        states: list[torch.Tensor] = []
        probes: list[torch.Tensor] = []

        def hook(_location, h):
            probe = torch.zeros_like(h, requires_grad=True)
            states.append(h.detach())
            probes.append(probe)
            return h + probe

        with torch.enable_grad():
            loss = loss_fn(net(xb, location_hook=hook), yb) * (xb.shape[0] / n)
            grads = torch.autograd.grad(loss, probes)
        yield states, [-g for g in grads]
