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
                   the budget, ``epochs // (max_stages + srl_stages)`` epochs each (§A)
``baseline``       the fixed ResidualMLP of depth ``final_blocks`` (the growth methods' cap), all
                   ``epochs`` in one stage (§D)
``nas``            Optuna (TPE) over depth, width and learning rate, ``n_trials`` trials of
                   ``epochs // n_trials`` epochs; the trial with the best validation loss is kept
=================  ===========================================================================

For classification the layerwise_srl method trains both phases with the cross-entropy on the logits,
like every other method: SRL stage k minimizes the loss of the sum of all networks so far (boosting in
function space; for the MSE exactly the residual fit of the sources), see :mod:`growth.srl`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

import growth
from growth.layerwise import LayerwiseStrategy
from growth.regularizers import Manifold, PhysicsPenalty, StageSchedule
from growth.srl import sequential_residual_learning
from problems.base import Data, Problem

METHODS = ("topological", "layerwise", "layerwise_srl", "sensitivity", "random", "net2deeper",
           "forward_thinking", "baseline", "nas")

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
    record together with the model being trained (None during SRL)."""
    s = settings_for(problem, method)
    torch.manual_seed(seed)
    if method == "nas":
        from problems.nas import search
        return search(problem, data, s, seed, device, callback)
    loss_fn = problem.loss_fn()
    train_data, val_data = data.train, data.val
    n_stages = s["final_blocks"] - s["n_blocks"] + 1
    n_blocks, epochs = s["n_blocks"], s["epochs"] // n_stages
    if method == "baseline":
        n_blocks, n_stages, epochs = s["final_blocks"], 1, s["epochs"]
    elif method == "layerwise_srl":
        epochs = s["epochs"] // (n_stages + s["srl_stages"])
    net = build_network(s, data, n_blocks, plain=method == "forward_thinking").to(device)
    strategy = _strategy(method, problem, data, s, seed)
    result = growth.grow(net, strategy, train_data, val_data, loss_fn=loss_fn, epochs_per_stage=epochs,
                         max_stages=n_stages, max_blocks=s["final_blocks"], patience=s["patience"],
                         min_rel_improvement=s["min_rel_improvement"], batch_size=s["batch_size"],
                         optimizer=adam(s["lr"], s.get("weight_decay", 0.0)), seed=seed, device=device,
                         progress=False, callback=lambda record: callback(record, net))
    if method != "layerwise_srl":
        return Trained(result.net, result.history, result.stop_reason)
    srl = sequential_residual_learning(
        result.net, train_data, val_data, n_stages=s["srl_stages"], width=s["srl_width"],
        n_hidden=s["srl_hidden"], activation=s["srl_activation"], epochs=epochs, batch_size=s["batch_size"],
        optimizer=adam(s["lr"]), seed=seed, loss_fn=loss_fn,
        callback=lambda record: callback({**record, "phase": "srl"}, None))
    return Trained(srl.model, result.history + srl.history, f"{result.stop_reason}; srl: {srl.stop_reason}")


def n_epochs(history: list) -> int:
    """Epochs actually trained (every phase)."""
    return sum(1 for r in history if r["event"] == "epoch")

