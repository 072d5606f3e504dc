"""Layerwise training (Approach I of Krishnanunni & Bui-Thanh, arXiv:2211.06860; docs/methods.md §A) as a
:class:`~growth.trainer.Strategy` for :func:`growth.grow`.

Network: a :class:`~growth.networks.ResidualMLP`, ``h_0 = W_in x + b_in`` (the authors use a linear
input layer: ``input_activation=None``), blocks ``h_k = h_{k−1} + σ(W_k h_{k−1} + b_k)``, linear head.

Stage 0 trains the network as given (all parameters). Each growth step appends block T+1 with
W = 0, b = 0 just before the head; since σ(0) = 0 the block is the identity and the network's
function is unchanged. The next stage freezes the input layer and blocks 1..T and trains only the
new block together with the head (which is never re-initialized), on

    J_T = data loss + α Φs + γ_l Φm + λ Φp,

    Φs = Σ |W_{T}| + Σ |b_{T}|                                 (L1 of the newest block)
    Φm = (1/M²) Σ_ij β_ij ‖h_T(x_i) − h_T(x_j)‖²               (on the manifold set, h_T = N^(l))
    γ_l = γ0 ρ^(l−2),  l = T + 1                               (the input layer is l = 1)
    Φp = fn(predictions, (inputs, targets, rows))               (supplied by the problem)

After every stage the newest block and the head are hard-thresholded (|w| ≤ tol → 0, tol = 1e-4)
and the active-parameter fraction of every layer is logged.

Activation: σ(0) = 0 makes the zero block the identity, and σ'(0) ≠ 0 is needed for the new block
to learn at all: at W = 0, b = 0 the gradient of σ(W h + b) is σ'(0)·(h, 1), so with ReLU
(σ'(0) = 0 in autograd) or 2·SiLU − tanh the new block would receive no gradient. ELU and tanh
qualify; ReLU and 2·SiLU − tanh are refused with a clear error.

Stopping: saturation is the trainer's plateau test, ``grow(..., min_rel_improvement=tol,
patience=p)``: growth stops after ``p`` consecutive layers that do not lower the validation loss (the
training loss when no validation set is given) by at least the fraction ``tol`` relative to the best
so far, or at ``max_stages``/``max_blocks``. The sources only say that the gain collapses after 4–7
layers [open].

The manifold penalty is evaluated on the manifold set at every mini-batch step (exactly, or on a
seeded subsample: ``Manifold(subsample=m)`` for large sets such as MNIST).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .growable import STACK_MEMBERS, has_members
from .regularizers import L1, Manifold, PhysicsPenalty, StageSchedule, active_fractions, hard_threshold
from .trainer import Context, Strategy

__all__ = ["LayerwiseStrategy", "check_layerwise_activation"]


def check_layerwise_activation(net: nn.Module) -> None:
    """Raise ValueError unless ``net`` is a plain stack (:class:`growth.growable.Stack`: layerwise
    training trains the newest block and the head) of residual blocks with σ(0) = 0 and σ'(0) ≠ 0."""
    if getattr(net, "block_kind", None) != "residual":
        raise ValueError(f"layerwise training appends residual blocks h + σ(W h + b); got a network of "
                         f"{getattr(net, 'block_kind', None)!r} blocks (use growth.ResidualMLP)")
    if not has_members(net, STACK_MEMBERS):
        raise ValueError(f"layerwise training needs a plain stack (input_layer, blocks, head, width); "
                         f"{type(net).__name__} is not one (use growth.ResidualMLP)")
    act = net.activation
    if act.d0 != 0.0 or act.d1 == 0.0:
        raise ValueError(f"layerwise training needs σ(0) = 0 and σ'(0) ≠ 0 (a zero block is the identity "
                         f"and still learns); activation {act.name!r} has σ(0) = {act.d0}, σ'(0) = {act.d1}. "
                         "Use 'elu' or 'tanh'.")


class LayerwiseStrategy(Strategy):
    """Layerwise growth with the sparsity, manifold and physics-informed regularizers.

    ``alpha``: weight of the L1 penalty on the newest block (0 disables it);
    ``manifold``: a :class:`~growth.regularizers.Manifold` (None disables Φm), weighted by
    ``schedule`` (a :class:`~growth.regularizers.StageSchedule`, γ_l = γ0 ρ^(l−2));
    ``physics``: a :class:`~growth.regularizers.PhysicsPenalty` or None;
    ``threshold``: the hard-threshold tolerance applied after every stage (None: no thresholding).
    """

    name = "layerwise"

    def __init__(self, alpha: float = 0.0, manifold: Optional[Manifold] = None,
                 schedule: Optional[StageSchedule] = None, physics: Optional[PhysicsPenalty] = None,
                 threshold: Optional[float] = 1e-4):
        if manifold is not None and schedule is None:
            raise ValueError("a manifold regularizer needs a StageSchedule for its weight γ_l")
        self.l1 = L1(alpha) if alpha else None
        self.manifold, self.schedule, self.physics, self.threshold = manifold, schedule, physics, threshold
        self._frozen_stage, self._frozen_states = None, None

    def check(self, net):
        check_layerwise_activation(net)
        if net.n_blocks < 1:
            raise ValueError("layerwise training starts from a network with at least one block")

    def trainable(self, net, ctx: Context):
        if ctx.stage == 0:
            return list(net.parameters())
        return [net.blocks[-1], net.head]

    def gamma(self, net) -> float:
        """γ_l of the stage that trains the newest block (block T is layer l = T + 1)."""
        return self.schedule.for_block(net.n_blocks)

    def penalty(self, net, inputs, targets, outputs, ctx: Context):
        terms = []
        if self.l1 is not None:
            terms.append(self.l1(net.blocks[-1].parameters()))
        if self.manifold is not None:
            terms.append(self.gamma(net) * self.manifold(self._feature_map(net, ctx, inputs.device)))
        if self.physics is not None:
            terms.append(self.physics(outputs, (inputs, targets, ctx.rows)))
        return sum(terms) if terms else None

    def _feature_map(self, net, ctx: Context, device):
        """The manifold set's feature map x ↦ h_T(x). From stage 1 on only the newest block (and the head)
        trains, so h_{T−1} of the whole manifold set is fixed within the stage: it is computed once per
        stage and only the newest block is evaluated per step (exact; with a subsampled set, every step
        evaluates the whole network on its subsample)."""
        if ctx.stage == 0 or self.manifold.subsample is not None:
            return lambda x: net.hidden_states(x.to(device))[-1]
        if self._frozen_stage != ctx.stage:
            with torch.no_grad():
                self._frozen_states = net.hidden_states(self.manifold.inputs.to(device))[-2]
            self._frozen_stage = ctx.stage
        return lambda x: net.blocks[-1](self._frozen_states)

    def end_stage(self, net, ctx: Context) -> dict:
        record = {"gamma": self.gamma(net) if self.schedule is not None else None}
        if self.threshold is not None:
            hard_threshold({"block": net.blocks[-1], "head": net.head}, self.threshold)
        record["active_fraction"] = active_fractions(_layers(net))
        return record

    def grow(self, net, ctx: Context) -> dict:
        location = net.n_blocks
        net.insert_block(location)  # W = 0, b = 0: the identity
        return {"location": location, "score": None, "eps": 0.0, "predicted_decrease": 0.0}


def _layers(net) -> dict[str, nn.Module]:
    layers = {"input": net.input_layer}
    layers.update({f"block_{k}": b for k, b in enumerate(net.blocks, start=1)})
    layers["head"] = net.head
    return layers
