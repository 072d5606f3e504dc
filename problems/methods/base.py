"""What a compared method is: a typed configuration, a network factory, a growth strategy, a schedule of
stages within the epoch budget, and the training protocol that puts them together.

A method is a :class:`Method` subclass in its own module of this package, registered by one line in
:data:`problems.methods.METHODS`. Its ``Config`` (a dataclass extending :class:`Settings`) lists every
setting it reads with its type and default; :func:`problems.methods.settings_for` builds it from the
problem's preset and refuses unknown or mistyped keys with one line.

The protocol (:meth:`Method.train`): by default every data-dependent decision (plateau stopping, SRL's
kept epochs) is taken on the problem's validation set. With ``cv_folds: K`` the decisions are chosen by
K-fold cross-validation on the training and validation sets pooled (:mod:`problems.methods.cv`) and
the method is then refitted on all of them with those decisions fixed.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

import growth
from problems.base import Data, Problem
from problems.methods.cv import Decisions, cross_validate
from problems.networks import Architecture, architecture, build_network
from problems.optimizers import optimizer_factory

__all__ = ["Settings", "Schedule", "Trained", "Method", "adam", "decided", "default_of", "n_epochs"]


def default_of(function: Callable, parameter: str):
    """The default of ``parameter`` in ``function``'s signature: a method's config takes growth's own
    default (e.g. RandomInsertion's ``std``) instead of writing the number a second time."""
    return inspect.signature(function).parameters[parameter].default


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The settings every method reads (the budget and the network; a method's ``Config`` adds its own).

    ``width``: hidden width; ``n_blocks``: initial depth of the growing methods; ``final_blocks``: their
    depth cap and the fixed baseline's depth; ``epochs``: the total budget of every method; ``lr`` and
    ``weight_decay``: Adam's learning rate and the L2 penalty (weight_decay/2)·‖θ‖²; ``batch_size``:
    None is full batch; ``patience``, ``min_rel_improvement``: the validation-plateau test;
    ``split``: (n_train, n_val, n_test) where the problem splits by counts; ``dtype``; ``threads``:
    torch CPU threads (None: torch's default); ``cv_folds``: K of the cross-validation protocol
    (None: decide on the validation set); ``activation``, ``input_activation``: the network's;
    ``optimizer``: "adam" or "adam_restarted" (:mod:`problems.optimizers`); ``init_std``: every weight and
    bias from N(0, init_std²) (None: PyTorch's defaults); ``standardize_inputs`` and ``split_rows``: read
    by the problem's loader (:func:`problems.base.dataset_split`, problems.heat.fixed_split).
    """

    width: int
    n_blocks: int
    final_blocks: int
    epochs: int
    lr: float
    batch_size: Optional[int]
    patience: int
    min_rel_improvement: float
    split: Optional[tuple[int, ...]] = None
    dtype: str = "float64"
    threads: Optional[int] = None
    weight_decay: float = 0.0
    cv_folds: Optional[int] = None
    activation: str = "td"
    input_activation: Optional[str] = "tanh"
    optimizer: str = "adam"
    init_std: Optional[float] = None
    standardize_inputs: bool = True
    split_rows: Optional[tuple[int, ...]] = None


@dataclass(frozen=True)
class Schedule:
    """Initial number of blocks, number of stages and epochs per stage."""

    n_blocks: int
    n_stages: int
    stage_epochs: int


@dataclass
class Trained:
    """A trained model, its log records (epoch, stage, growth, stop) and why training stopped."""

    model: nn.Module
    history: list
    stop_reason: str


def adam(lr: float, weight_decay: float = 0.0) -> Callable:
    return lambda params: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def n_epochs(history: list) -> int:
    """Epochs actually trained (every phase)."""
    return sum(1 for r in history if r["event"] == "epoch")


class Method:
    """A compared method. Subclasses set ``name`` and ``Config`` and override what differs:
    :meth:`network` (default: a ResidualMLP), :meth:`strategy`, :meth:`schedule` (default: the growth
    methods' ``final_blocks − n_blocks + 1`` stages of ``epochs // stages`` epochs) and :meth:`train`.

    ``callback(record, model)`` (growth's one callback signature) sees every log record with the model
    being trained; the selection record of cross-validation comes with None."""

    name = "method"
    Config: type = Settings
    plain_network = False
    needs_stack = False  # needs a plain MLP stack (growth.Stack), not only the growable protocol
    keeps_stage_networks = False  # cross-validation keeps each stage's fold networks (SRL continues them)

    def network(self, config: Settings, data: Data, n_blocks: int, width: Optional[int] = None,
                architecture: Optional[Architecture] = None) -> nn.Module:
        """A PlainMLP (``plain_network``) or ResidualMLP of ``n_blocks`` blocks for ``data``'s shapes, or
        the CNN/ViT of the problem's ``architecture`` (:mod:`problems.networks`)."""
        if architecture is not None:
            return build_network(architecture, config, data, n_blocks, width)
        cls = growth.PlainMLP if self.plain_network else growth.ResidualMLP
        net = cls(data.x_train.shape[1], data.n_outputs, width or config.width, n_blocks,
                  activation=config.activation, input_activation=config.input_activation)
        if config.init_std:
            with torch.no_grad():
                for parameter in net.parameters():
                    parameter.normal_(0.0, config.init_std)
        return net.to(data.x_train.dtype)

    def strategy(self, problem: Problem, data: Data, config: Settings, seed: int) -> growth.Strategy:
        raise NotImplementedError

    def schedule(self, config: Settings, decisions: Optional[Decisions] = None) -> Schedule:
        """Growth stages within the budget; ``decisions`` (cross-validation) override stages/epochs."""
        n_stages = config.final_blocks - config.n_blocks + 1
        return decided(Schedule(config.n_blocks, n_stages, config.epochs // n_stages), decisions)

    def train(self, problem: Problem, data: Data, config: Settings, seed: int, device,
              callback: Callable) -> Trained:
        """Seed torch with ``seed``; with ``cv_folds``, choose the decisions on folds and refit on training
        + validation (:mod:`problems.methods.cv`); then the growth phase and :meth:`finish`."""
        torch.manual_seed(seed)
        decisions, selection = None, []
        if config.cv_folds:
            decisions, data = cross_validate(self, problem, data, config, seed, device)
            selection = [decisions.record(config.cv_folds)]
            callback(selection[0], None)
            torch.manual_seed(seed)
        result = self.grow(problem, data, config, seed, device, callback, decisions)
        trained = Trained(result.net, selection + result.history, result.stop_reason)
        return self.finish(problem, data, config, seed, decisions, trained, callback)

    def finish(self, problem: Problem, data: Data, config: Settings, seed: int, decisions: Optional[Decisions],
               trained: Trained, callback: Callable) -> Trained:
        """What follows the growth phase, on the data it trained on (default: nothing)."""
        return trained

    def grow(self, problem: Problem, data: Data, config: Settings, seed: int, device, callback: Callable,
             decisions: Optional[Decisions] = None, patience: Optional[float] = None) -> growth.GrowResult:
        """The growth phase: :func:`growth.grow` with the method's network, strategy and schedule;
        validation-plateau stopping on ``data.val`` (on the training loss if it is empty), none after
        cross-validation (the decisions fix the stages)."""
        plan = self.schedule(config, decisions)
        if patience is None:
            patience = math.inf if decisions is not None else config.patience
        net = self.network(config, data, plan.n_blocks, architecture=architecture(problem)).to(device)
        strategy = self.strategy(problem, data, config, seed)
        return growth.grow(net, strategy, data.train.xy, data.val.xy if len(data.x_val) else None,
                           loss_fn=problem.loss_fn(), epochs_per_stage=plan.stage_epochs, max_stages=plan.n_stages,
                           max_blocks=config.final_blocks, patience=patience,
                           min_rel_improvement=config.min_rel_improvement, batch_size=config.batch_size,
                           optimizer=optimizer_factory(config.optimizer, config.lr, config.weight_decay),
                           seed=seed, device=device,
                           progress=False, callback=callback)


def decided(schedule: Schedule, decisions: Optional[Decisions]) -> Schedule:
    """``schedule`` with the number of stages and of epochs per stage that cross-validation chose."""
    if decisions is None:
        return schedule
    return Schedule(schedule.n_blocks, decisions.stages or schedule.n_stages,
                    decisions.stage_epochs or schedule.stage_epochs)
