"""Growth methods as :class:`~growth.trainer.Strategy` objects (docs/methods.md §B–D).

=====================  ==========================================================================
``TopologicalStrategy`` insert at argmax_l λ_max(Q_l) the top eigen-direction, ε by line search;
                        stop when λ_max ≤ 0 everywhere (docs/methods.md §B)
``SensitivityStrategy`` SensLI: insert the function-preserving virtual block with the largest
                        ``‖∂J/∂θ‖²`` (§C)
``RandomInsertion``     random location; ``init="random"`` (I, N(0, std²) weights, zero bias) or
                        ``"zero"`` (II, the identity block) (§D)
``Net2DeeperNet``       identity residual block (zero) + N(0, noise²) symmetry-breaking weights at a
                        fixed location, by default just before the head (§D)
``ForwardThinking``     plain stack: append σ(W h + b), W ~ N(0, 0.005²), b = 0, before a freshly
                        initialized head; train only the new layer and the head (§D)
``FixedBaseline``       no growth: the given architecture trained for one stage (§D)
=====================  ==========================================================================

All random numbers come from ``ctx.generator`` (deterministic, checkpointed).
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from .adaptive_td import AdaptiveRule
from .growable import check_growable, insert_residual, location_of
from .networks import PlainMLP
from .proposal import apply_proposal
from .sensitivity import check_sensitivity, sensitivity_scores
from .topological import check_td_activation, line_search, topological_derivative
from .trainer import Context, Strategy

__all__ = ["TopologicalStrategy", "SensitivityStrategy", "RandomInsertion", "Net2DeeperNet",
           "ForwardThinking", "FixedBaseline"]


def _normal(shape, std: float, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return (std * torch.randn(shape, generator=generator, dtype=torch.float64)).to(like)


class TopologicalStrategy(Strategy):
    """Topological-derivative insertion. Options: ``multi_neuron``/``ratio``/``max_neurons`` (the
    authors' top-k rule), ``bias`` (bias augmentation), ``step``/``max_steps`` (ε line search on the
    training loss), ``batch_size`` (mini-batches for accumulating Q_l), ``subsample`` (estimate Q_l
    from that many training samples, a random subset fixed by ``subsample_seed`` and the same at every
    insertion: unbiased, see :mod:`growth.topological`; None, the default, uses all of them),
    ``estimation`` (``"auto"``, the default: the adaptive estimate of :mod:`growth.adaptive_td` where
    the exact blocks cost more than half an epoch, ``"adaptive"`` or ``"exact"``) with ``tolerance``
    (its promised relative gap to the best insertion), its sample order seeded by ``subsample_seed``
    and the stage. The growth record's ``estimate`` holds the samples used and the uncertainty."""

    name = "topological"

    def __init__(self, multi_neuron: bool = False, ratio: float = 0.5, max_neurons: Optional[int] = None,
                 bias: bool = False, step: float = 0.1, max_steps: int = 100, batch_size: Optional[int] = None,
                 subsample: Optional[int] = None, subsample_seed: int = 0, estimation: str = "auto",
                 tolerance: float = 0.05, positions: Optional[int] = None):
        self.options = dict(multi_neuron=multi_neuron, ratio=ratio, max_neurons=max_neurons, bias=bias,
                            batch_size=batch_size, subsample=subsample, subsample_seed=subsample_seed,
                            estimation=estimation, positions=positions)
        self.step, self.max_steps, self.tolerance = step, max_steps, tolerance

    def check(self, net):
        check_td_activation(net)

    def grow(self, net, ctx: Context):
        rule = AdaptiveRule(self.tolerance, seed=self.options["subsample_seed"] * 1_000_003 + ctx.stage)
        proposals = topological_derivative(net, ctx.loss_fn, ctx.train, rule=rule, **self.options)
        best = max(proposals, key=lambda p: p.eigenvalue)
        if best.eigenvalue <= 0:
            return None
        chosen, _ = line_search(net, best, ctx.loss, step=self.step, max_steps=self.max_steps)
        if chosen is None:
            return None
        return {"location": chosen.location, "score": chosen.score, "eigenvalue": chosen.eigenvalue,
                "eps": chosen.eps, "predicted_decrease": chosen.predicted_decrease,
                "predicted_change": -chosen.predicted_decrease,
                "scores": [p.eigenvalue for p in proposals], "estimate": chosen.estimate}


class SensitivityStrategy(Strategy):
    """SensLI: ``kind="two_weight"`` (W1 = 0.8·I, W2 = 0; any σ) or ``"one_weight"`` (W = b = 0)."""

    name = "sensitivity"

    def __init__(self, kind: str = "two_weight", batch_size: Optional[int] = None):
        self.kind, self.batch_size = kind, batch_size

    def check(self, net):
        check_sensitivity(net, self.kind)

    def grow(self, net, ctx: Context):
        proposals = sensitivity_scores(net, ctx.loss_fn, ctx.train, kind=self.kind, batch_size=self.batch_size)
        best = max(proposals, key=lambda p: p.score)
        apply_proposal(net, best)
        return {"location": best.location, "score": best.score, "eps": None, "predicted_decrease": 0.0,
                "predicted_change": 0.0, "scores": [p.score for p in proposals]}


class _FixedBlockInsertion(Strategy):
    """Insert a residual block with weight ``N(0, std²)`` (std 0: the identity) at ``_location``."""

    std = 0.0

    def check(self, net):
        check_growable(net)
        if net.block_kind != "residual":
            raise ValueError(f"{self.name} inserts residual blocks; got a network of {net.block_kind!r} blocks")

    def _location(self, net, ctx: Context) -> int:
        raise NotImplementedError

    def grow(self, net, ctx: Context):
        loc = self._location(net, ctx)
        shape = location_of(net, loc).operator.weight_shape
        ref = net.reference_parameter()
        weight = _normal(shape, self.std, ref, ctx.generator) if self.std > 0 else None
        insert_residual(net, loc, weight)
        return {"location": loc, "score": None, "eps": self.std, "predicted_decrease": None}


class RandomInsertion(_FixedBlockInsertion):
    """Random location (uniform over the network's locations); ``init="random"`` (I): W ~ N(0, std²), b = 0;
    ``init="zero"`` (II): W = b = 0 (the identity)."""

    name = "random"

    def __init__(self, init: str = "random", std: float = 1e-2):
        if init not in ("random", "zero"):
            raise ValueError(f"init must be 'random' or 'zero', got {init!r}")
        self.init, self.std = init, (std if init == "random" else 0.0)

    def _location(self, net, ctx):
        return int(torch.randint(len(net.locations()), (1,), generator=ctx.generator))


class Net2DeeperNet(_FixedBlockInsertion):
    """Identity residual block plus N(0, noise²) symmetry-breaking weights at ``location``
    (an int, or "end": the last location, just before the head)."""

    name = "net2deeper"

    def __init__(self, location: Union[int, str] = "end", noise: float = 1e-3):
        self.location, self.std = location, noise

    def _location(self, net, ctx):
        return len(net.locations()) - 1 if self.location == "end" else location_of(net, self.location).index


class ForwardThinking(Strategy):
    """Forward Thinking on a :class:`~growth.networks.PlainMLP`: at every stage after the first,
    only the newest layer and the (re-initialized) head are trained. Needs a plain stack
    (:class:`growth.growable.Stack`, no skip connections), not only a residual stream."""

    name = "forward_thinking"

    def __init__(self, std: float = 0.005):
        self.std = std

    def check(self, net):
        if not isinstance(net, PlainMLP):
            raise ValueError(f"Forward Thinking grows a PlainMLP (no skip connections), got {type(net).__name__}")

    def trainable(self, net, ctx):
        if ctx.stage == 0 or net.n_blocks == 0:
            return list(net.parameters())
        return [net.blocks[-1], net.head]

    def grow(self, net, ctx: Context):
        ref = net.head.weight
        net.insert_block(net.n_blocks, weight=_normal((net.width, net.width), self.std, ref, ctx.generator))
        bound = 1.0 / math.sqrt(net.width)  # PyTorch's nn.Linear default range, drawn from ctx.generator
        head = nn.Linear(net.width, net.out_features, dtype=ref.dtype, device=ref.device)
        with torch.no_grad():
            for p in head.parameters():
                p.copy_((2 * torch.rand(p.shape, generator=ctx.generator, dtype=torch.float64) - 1) * bound)
        net.head = head  # new Parameter objects: fresh optimizer state
        return {"location": net.n_blocks - 1, "score": None, "eps": self.std, "predicted_decrease": None}


class FixedBaseline(Strategy):
    """No growth: train the given network for one stage (give it all the epochs)."""

    name = "baseline"

    def should_stop(self, net, ctx):
        return "fixed architecture"
