"""Optimizers the problems' presets can name (``"optimizer"`` setting), as factories ``params -> Optimizer``.

``"adam"``: torch Adam (lr, weight_decay), moments carried across the whole run.

``"adam_restarted"``: Adam whose state is new at every step, as in the sources' heat code (it builds a
new ``tf.keras.optimizers.Adam`` every epoch and trains on one full batch per epoch, so every step is
the first step of a fresh Adam). With bias correction that first step is

    θ ← θ − lr · g / (|g| + ε̂),   ε̂ = ε / sqrt(1 − β2) = 1e-7 / sqrt(0.001) ≈ 3.2e-6

(Keras adds ε to sqrt(v) before the bias correction of the step size): a sign-gradient step of size
lr per parameter wherever |g| ≫ ε̂. It keeps no state, so it equals the sources' optimizer exactly
only with one step per epoch (full batch), which is how their logged run trained.
"""
from __future__ import annotations

from typing import Callable

import torch

KERAS_EPSILON, KERAS_BETA2 = 1e-7, 0.999


class RestartedAdam(torch.optim.Optimizer):
    """θ ← θ − lr·(g + wd·θ)/(|g + wd·θ| + eps): the first step of a freshly created Adam, every step."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0,
                 eps: float = KERAS_EPSILON / (1.0 - KERAS_BETA2) ** 0.5):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p if group["weight_decay"] else p.grad
                p.sub_(group["lr"] * g / (g.abs() + group["eps"]))
        return loss


def optimizer_factory(name: str, lr: float, weight_decay: float = 0.0) -> Callable:
    """``params -> Optimizer`` for the ``optimizer`` setting ``name`` (ValueError for an unknown one)."""
    if name == "adam":
        return lambda params: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adam_restarted":
        return lambda params: RestartedAdam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r} (known: adam, adam_restarted)")
