"""The trainer's divergence guard: a non-finite or exploding loss is rolled back, never kept.

Before every epoch the guard copies the last good state (network parameters and buffers, optimizer
state, the mini-batch generator). An epoch *diverged* when its mean training loss or the validation
loss afterwards is NaN or ±inf, or exceeds ``explode_factor`` (default 10³) times the corresponding
loss J₀ of the network before the run's first epoch (the same loss, so the test is invariant to the
loss's units; with standardized targets J₀ ≈ 1 and a healthy run stays below it). J₀ is estimated on
the first ``REFERENCE_ROWS`` (256) rows of each set: a scale to compare with, whose sampling error
(a relative standard error of about CV/16 for per-sample losses of coefficient of variation CV) is
negligible against the factor 10³, at a few hundredths of an epoch. Then the state is
restored, every learning rate is multiplied by ``lr_factor`` (default 0.1) and the epoch is run
again; each roll-back is one ``{"event": "divergence", ...}`` record in the run's log. After
``max_retries`` (default 3) roll-backs in one run the next divergence raises
:class:`TrainingDiverged`: the run fails with one line instead of returning a network whose losses
and metrics are NaN or inf.

The lowered rate also applies to the optimizers of later stages (``scaled`` wraps the trainer's
optimizer factory). A run resumed from a checkpoint starts a fresh guard (the checkpointed optimizer
keeps its lowered rate for the current stage).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .data import n_samples, take

__all__ = ["DivergenceGuard", "TrainingDiverged"]

REFERENCE_ROWS = 256  # rows of each set on which J₀ is estimated


class TrainingDiverged(RuntimeError):
    """Training kept diverging after the guard's roll-backs; the message is one line."""


class DivergenceGuard:
    """Roll back, lower the learning rate and retry a diverged epoch (see the module docstring)."""

    def __init__(self, max_retries: int = 3, lr_factor: float = 0.1, explode_factor: float = 1e3):
        self.max_retries, self.lr_factor, self.explode_factor = max_retries, lr_factor, explode_factor
        self.retries, self.lr_scale = 0, 1.0
        self.reference: tuple[float, float] | None = None  # (J₀ train, J₀ validation)

    def scaled(self, factory: Callable) -> Callable:
        """The optimizer factory with every learning rate multiplied by the current scale."""
        def make(params):
            opt = factory(params)
            for group in opt.param_groups:
                group["lr"] *= self.lr_scale
            return opt
        return make

    def epoch(self, net: nn.Module, opt: torch.optim.Optimizer, ctx, log: Callable,
              train_epoch: Callable[[], float]) -> tuple[float, float]:
        """Run ``train_epoch`` (returns the mean training loss) until it does not diverge; returns
        (training loss, validation loss — the training loss when there is no validation set)."""
        if self.reference is None:
            self.reference = tuple(None if data is None else
                                   ctx.loss(net, take(data, torch.arange(min(REFERENCE_ROWS, n_samples(data)))))
                                   for data in (ctx.train, ctx.val))
        good = _snapshot(net, opt, ctx.generator)
        while True:
            train_loss = train_epoch()
            val_loss = _val_loss(ctx, net, train_loss)
            if not self._diverged(train_loss, val_loss):
                return train_loss, val_loss
            self._roll_back(good, net, opt, ctx, log, train_loss, val_loss)

    def _diverged(self, train_loss: float, val_loss: float) -> bool:
        """Non-finite, or above explode_factor · J₀ (J₀ = 0 or no validation set: that test is off)."""
        for loss, reference in zip((train_loss, val_loss), self.reference):
            if reference is not None and (not math.isfinite(loss) or
                                          (reference > 0 and loss > self.explode_factor * reference)):
                return True
        return False

    def _roll_back(self, good: dict, net, opt, ctx, log, train_loss: float, val_loss: float) -> None:
        where = f"stage {ctx.stage}, epoch {ctx.epoch + 1}"
        if self.retries >= self.max_retries:
            raise TrainingDiverged(
                f"training diverged ({where}: training loss {train_loss:.3g}, validation loss "
                f"{val_loss:.3g}) after {self.retries} roll-backs with the learning rate lowered "
                f"{1 / self.lr_scale:g}-fold")
        self.retries += 1
        self.lr_scale *= self.lr_factor
        net.load_state_dict(good["net"])
        opt.load_state_dict(good["optimizer"])
        for group in opt.param_groups:
            group["lr"] *= self.lr_factor
        ctx.generator.set_state(good["generator"])
        good.update(_snapshot(net, opt, ctx.generator))  # the restored state, with the new rate
        log({"event": "divergence", "stage": ctx.stage, "epoch": ctx.epoch + 1,
             "train_loss": _json_number(train_loss), "val_loss": _json_number(val_loss),
             "lr": [group["lr"] for group in opt.param_groups], "retry": self.retries})


def _val_loss(ctx, net: nn.Module, default):
    return ctx.val_loss(net) if ctx.val is not None else default


def _snapshot(net: nn.Module, opt: torch.optim.Optimizer, generator: torch.Generator) -> dict:
    """Copies (not views) of the network's and optimizer's state and the generator's state."""
    return {"net": {k: v.detach().clone() for k, v in net.state_dict().items()},
            "optimizer": _clone(opt.state_dict()), "generator": generator.get_state()}


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _json_number(x: float):
    """``x``, or its name ("nan", "inf", "-inf") where JSON has no number for it."""
    return x if math.isfinite(x) else str(x)
