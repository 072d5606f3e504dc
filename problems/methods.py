"""The compared methods: one network, one growth strategy and one training budget per method name.

Every method trains for at most the preset's ``epochs`` in total (the budget; growth methods may stop
earlier when the validation loss stops improving), with Adam at the preset's ``lr`` and the L2 penalty
(``weight_decay``/2)·‖θ‖² on the trained parameters (Adam's ``weight_decay``: its gradient is added
to the loss gradient; default 0), the same for every method of a problem (SRL's correction
networks excepted: they train without it):

=================  ===========================================================================
``topological``    ResidualMLP (σ = 2·SiLU − tanh, tanh after the input layer), ``n_blocks`` blocks,
                   then TopologicalStrategy; ``max_stages = final_blocks − n_blocks + 1`` stages of
                   ``epochs // max_stages`` epochs each (METHODS.md §B); Q_l from a fixed random
                   subset of ``score_subsample`` training samples (seeded by the run's seed) where
                   the preset sets it, an unbiased estimate (growth.topological), else from all
``sensitivity``    the same network and stages, SensLI two-weight virtual blocks (§C)
``random``         the same, random location, N(0, 0.01²) weights (variant I of §D)
``net2deeper``     the same, identity block + N(0, 0.001²) noise before the head (§D)
``forward_thinking`` PlainMLP (ELU), new layer N(0, 0.005²), re-initialized head, earlier layers frozen
``layerwise``      ResidualMLP (ELU, linear input layer), LayerwiseStrategy with the problem's L1,
                   manifold and physics-informed regularizers (§A)
``layerwise_srl``  layerwise, then SRL: the layerwise stages and the ``srl_stages`` SRL networks share
                   the budget, ``epochs // (max_stages + srl_stages)`` epochs each (an SRL stage at
                   most ``srl_epochs`` instead where the preset sets it) (§A)
``baseline``       the fixed ResidualMLP of depth ``final_blocks`` (the growth methods' cap), all
                   ``epochs`` in one stage (§D)
``nas``            Optuna (TPE) over depth, width and learning rate, ``n_trials`` trials of
                   ``epochs // n_trials`` epochs; the trial with the best validation loss is kept
=================  ===========================================================================

Protocol: by default every data-dependent decision (plateau stopping, SRL's kept epochs) is taken
on the problem's validation set. With ``cv_folds: K`` in the preset (or a method's overrides) the
decisions are instead chosen by K-fold cross-validation on the training and validation sets pooled,
and the method is then refitted on all of them with those decisions fixed (:func:`cross_validate`);
``nas`` always searches on the validation set.

For classification the layerwise_srl method trains both phases with the cross-entropy on the logits,
like every other method: SRL stage k minimizes the loss of the sum of all networks so far (boosting in
function space; for the MSE exactly the residual fit of the sources), see :mod:`growth.srl`.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

import growth
from growth.layerwise import LayerwiseStrategy
from growth.regularizers import Manifold, PhysicsPenalty, StageSchedule
from growth.srl import select_srl_epochs, sequential_residual_learning
from common.errors import UserError
from problems.base import Data, Problem

METHODS = ("topological", "layerwise", "layerwise_srl", "sensitivity", "random", "net2deeper",
           "forward_thinking", "baseline", "nas")


def check_method(name: str) -> None:
    """UserError naming ``name`` if it is not one of :data:`METHODS`."""
    if name not in METHODS:
        raise UserError(f"unknown method '{name}' (known: {', '.join(METHODS)})")

_NETWORK = {"activation": "td", "input_activation": "tanh"}
_DEFAULTS = {
    "layerwise": {"activation": "elu", "input_activation": None},
    "layerwise_srl": {"activation": "elu", "input_activation": None},
    "forward_thinking": {"activation": "elu", "input_activation": "elu"},
}
_SRL = {"srl_stages": 3, "srl_width": 10, "srl_hidden": 2, "srl_activation": "relu"}


@dataclass
class Trained:
    """A trained model, its log records (epoch, stage, growth, stop) and why training stopped."""

    model: nn.Module
    history: list
    stop_reason: str


def settings_for(problem: Problem, method: str) -> dict:
    """Every setting a run of ``method`` uses: defaults, the preset, the preset's method overrides."""
    if method not in METHODS:
        raise KeyError(method)
    extra = dict(_SRL) if method == "layerwise_srl" else {}
    base = {k: v for k, v in problem.settings.items() if k != "methods"}
    return {**_NETWORK, **_DEFAULTS.get(method, {}), **extra, **base,
            **problem.settings.get("methods", {}).get(method, {})}


def build_network(settings: dict, data: Data, n_blocks: int, plain: bool = False, width: Optional[int] = None):
    cls = growth.PlainMLP if plain else growth.ResidualMLP
    n_out = data.info.get("n_classes", data.y_train.shape[1] if data.y_train.ndim == 2 else None)
    net = cls(data.x_train.shape[1], n_out, width or settings["width"], n_blocks,
              activation=settings["activation"], input_activation=settings["input_activation"])
    return net.to(data.x_train.dtype)


def _layerwise_strategy(problem: Problem, data: Data, s: dict, seed: int) -> LayerwiseStrategy:
    manifold = None
    x = data.x_train.cpu()
    if s.get("manifold") == "noisy_copies":
        manifold = Manifold.from_noisy_copies(x, s["manifold_copies"], s["manifold_noise"], seed=seed,
                                              subsample=s.get("manifold_subsample"))
    elif s.get("manifold") == "clusters":
        manifold = Manifold.from_clusters(x, s.get("manifold_clusters", 5), seed=seed,
                                          subsample=s.get("manifold_subsample"))
    elif s.get("manifold") == "labels":
        manifold = Manifold.from_labels(x, data.info["labels_train"], seed=seed,
                                        subsample=s.get("manifold_subsample"))
    if manifold is not None:
        manifold.inputs = manifold.inputs.to(data.x_train.device)
    physics = None
    if s.get("physics"):
        physics = PhysicsPenalty(problem.physics(data, s["physics"]), s["physics_weight"])
    schedule = StageSchedule(s["gamma0"], s["rho"]) if manifold is not None else None
    return LayerwiseStrategy(alpha=s.get("alpha", 0.0), manifold=manifold, schedule=schedule, physics=physics,
                             threshold=s.get("threshold", 1e-4))


def _strategy(name: str, problem: Problem, data: Data, s: dict, seed: int):
    if name == "topological":
        return growth.TopologicalStrategy(batch_size=s.get("score_batch_size"), subsample=s.get("score_subsample"),
                                          subsample_seed=seed)
    if name == "sensitivity":
        return growth.SensitivityStrategy(batch_size=s.get("score_batch_size"))
    if name == "random":
        return growth.RandomInsertion(init=s.get("random_init", "random"), std=s.get("random_std", 1e-2))
    if name == "net2deeper":
        return growth.Net2DeeperNet(noise=s.get("net2deeper_noise", 1e-3))
    if name == "forward_thinking":
        return growth.ForwardThinking(std=s.get("forward_thinking_std", 0.005))
    if name in ("layerwise", "layerwise_srl"):
        return _layerwise_strategy(problem, data, s, seed)
    return growth.FixedBaseline()


def adam(lr: float, weight_decay: float = 0.0) -> Callable:
    return lambda params: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def train(problem: Problem, data: Data, method: str, seed: int, device, callback: Callable) -> Trained:
    """Train ``method`` on ``data`` (seeded by ``seed``); ``callback(record, model)`` sees every log
    record together with the model being trained. With ``cv_folds`` in the
    settings, the protocol of :func:`cross_validate`: choose on folds, refit on training + validation."""
    s = settings_for(problem, method)
    torch.manual_seed(seed)
    if method == "nas":
        from problems.nas import search
        return search(problem, data, s, seed, device, callback)
    selection = []
    if s.get("cv_folds"):
        decisions, data = cross_validate(problem, data, method, s, seed, device)
        s = {**s, **decisions, "patience": math.inf}
        selection = [{"event": "selection", "folds": s["cv_folds"], **decisions}]
        callback(selection[0], None)
        torch.manual_seed(seed)
    result = _grow(problem, data, method, s, seed, device, callback)
    if method != "layerwise_srl":
        return Trained(result.net, selection + result.history, result.stop_reason)
    val_data = data.val if len(data.x_val) else None
    srl = sequential_residual_learning(
        result.net, data.train, val_data, n_stages=s["srl_stages"], width=s["srl_width"],
        n_hidden=s["srl_hidden"], activation=s["srl_activation"], epochs=_srl_epochs(s),
        batch_size=s["batch_size"], optimizer=adam(s["lr"]), seed=seed, loss_fn=problem.loss_fn(),
        callback=callback)
    return Trained(srl.model, selection + result.history + srl.history,
                   f"{result.stop_reason}; srl: {srl.stop_reason}")


def _schedule(method: str, s: dict) -> tuple[int, int, int]:
    """(initial blocks, stages, epochs per stage) of ``method`` within the budget ``s["epochs"]``;
    ``stages``/``stage_epochs`` in ``s`` (decisions of :func:`cross_validate`) override the last two."""
    n_stages = s["final_blocks"] - s["n_blocks"] + 1
    n_blocks, epochs = s["n_blocks"], s["epochs"] // n_stages
    if method == "baseline":
        n_blocks, n_stages, epochs = s["final_blocks"], 1, s["epochs"]
    elif method == "layerwise_srl":
        epochs = s["epochs"] // (n_stages + s["srl_stages"])
    return n_blocks, s.get("stages", n_stages), s.get("stage_epochs", epochs)


def _srl_epochs(s: dict):
    """The most epochs of one SRL stage: ``srl_epochs`` if the preset sets it, else the per-stage share
    of the budget; or, after :func:`cross_validate`, the chosen count of every stage (a list)."""
    return s.get("srl_epochs", _schedule("layerwise_srl", s)[2])


def _grow(problem: Problem, data: Data, method: str, s: dict, seed: int, device, callback: Callable):
    """The growth phase (the whole run but SRL): :func:`growth.grow` with the method's network, strategy
    and schedule; validation-plateau stopping on ``data.val`` (on the training loss if it is empty)."""
    n_blocks, n_stages, epochs = _schedule(method, s)
    net = build_network(s, data, n_blocks, plain=method == "forward_thinking").to(device)
    strategy = _strategy(method, problem, data, s, seed)
    return growth.grow(net, strategy, data.train, data.val if len(data.x_val) else None, loss_fn=problem.loss_fn(),
                       epochs_per_stage=epochs, max_stages=n_stages, max_blocks=s["final_blocks"],
                       patience=s["patience"], min_rel_improvement=s["min_rel_improvement"],
                       batch_size=s["batch_size"], optimizer=adam(s["lr"], s.get("weight_decay", 0.0)), seed=seed,
                       device=device, progress=False, callback=callback)


def cross_validate(problem: Problem, data: Data, method: str, s: dict, seed: int, device) -> tuple[dict, Data]:
    """Choose a method's data-dependent decisions by K-fold cross-validation (K = ``s["cv_folds"]``) on
    the training and validation sets pooled, never the test set; return them with the pooled data
    (no validation set) on which :func:`train` then refits with the decisions fixed.

    Folds: ``RandomState(problem.split_seed).permutation`` of the pooled rows cut into K nearly equal
    parts (the same for every method and seed). On fold i the method trains on the other K − 1 parts
    with part i as validation set and no plateau stopping (every stage runs), and the decisions
    minimize the validation loss averaged over the folds:

    * the number of stages S (growth methods: the candidates are the stage ends) or, for a method of
      one stage (the fixed baseline), its number of epochs;
    * layerwise_srl: the epochs of every SRL stage, chosen stage by stage on the fold networks after
      S stages (:func:`growth.srl.select_srl_epochs`, up to ``srl_stages`` stages of at most
      :func:`_srl_epochs` epochs).

    The refit trains exactly these stages/epochs (no plateau test: ``patience`` = ∞). Entries of
    ``data.info`` that follow the training rows (e.g. MNIST's ``labels_train``) are not re-split:
    the protocol is for problems whose regularizers take only the inputs and targets.
    """
    x, y = torch.cat([data.x_train, data.x_val]), torch.cat([data.y_train, data.y_val])
    folds = np.array_split(np.random.RandomState(problem.split_seed).permutation(len(x)), s["cv_folds"])
    n_stages = _schedule(method, s)[1]
    by_epoch = n_stages == 1
    curves, snapshots, fold_data = [], [], []
    for fold in folds:
        rest = np.setdiff1d(np.arange(len(x)), fold)
        fd = dataclasses.replace(data, x_train=x[rest], y_train=y[rest], x_val=x[fold], y_val=y[fold])
        curve, nets = [], []

        def record(r, net, curve=curve, nets=nets):
            if r["event"] == ("epoch" if by_epoch else "stage"):
                curve.append(r["val_loss"])
            if r["event"] == "stage" and method == "layerwise_srl":
                nets.append(copy.deepcopy(net))

        torch.manual_seed(seed)
        _grow(problem, fd, method, {**s, "patience": math.inf}, seed, device, record)
        curves.append(curve)
        snapshots.append(nets)
        fold_data.append(fd)
    common = min(len(c) for c in curves)
    mean = np.mean([c[:common] for c in curves], axis=0)
    best = int(np.argmin(mean)) + 1
    decisions = {"cv_loss": float(mean[best - 1]),
                 **({"stage_epochs": best} if by_epoch else {"stages": best})}
    if method == "layerwise_srl":
        decisions["srl_epochs"] = select_srl_epochs(
            [nets[best - 1] for nets in snapshots], [(fd.train, fd.val) for fd in fold_data],
            n_stages=s["srl_stages"], width=s["srl_width"], n_hidden=s["srl_hidden"],
            activation=s["srl_activation"], epochs=_srl_epochs(s), batch_size=s["batch_size"],
            optimizer=adam(s["lr"]), seed=seed, loss_fn=problem.loss_fn())
    pooled = dataclasses.replace(data, x_train=x, y_train=y, x_val=x[:0], y_val=y[:0])
    return decisions, pooled


def n_epochs(history: list) -> int:
    """Epochs actually trained (every phase)."""
    return sum(1 for r in history if r["event"] == "epoch")

