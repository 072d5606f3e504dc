"""Sequential residual learning, SRL (Krishnanunni & Bui-Thanh, arXiv:2211.06860; docs/methods.md §A).

After any trained network f_1 (layerwise or a baseline), fit small fresh networks Q_1, Q_2, ... one
after another and predict F_K = f_1 + Σ_{k≤K} Q_k. Stage k minimizes the task loss ℓ of the sum over
the new network only (everything fitted before is frozen):

    Q_k = argmin_Q (1/S) Σ_s ℓ(F_{k−1}(x_s) + Q(x_s), t_s).

For the mean squared error this is exactly the sources' rule, Q_k fits the current training residual
r_k = t − F_{k−1}(x) by MSE (ℓ(F + Q, t) = ‖Q − (t − F)‖²). For classification the sources do not
say how SRL treats class labels [open]; we use the same rule with ℓ = cross-entropy on the logits,
i.e. gradient boosting in function space: each Q_k corrects the logits of the current model. The
alternative, MSE on one-hot targets, trains the classifier with a loss it is not evaluated with and
spends capacity on fitting logits to exactly 0/1 (measured in results/notes.md). Implementation: F_{k−1}(x) is computed once per stage and passed to the trainer as
extra input columns, ``[x, F_{k−1}(x)] ↦ F_{k−1}(x) + Q_k(x)`` (:class:`_Offset`), so the frozen
networks are not re-evaluated at every mini-batch and the loss is that of the sum.

Each Q_k is a :class:`~growth.networks.PlainMLP` trained by the growth trainer (:func:`growth.grow`
with :class:`~growth.strategies.FixedBaseline`), with its head started at zero so that every stage
starts from the previous model's function.

Epochs and stopping. With a validation set, Q_k is trained for ``epochs`` epochs and the state with
the lowest validation loss of the sum is kept (best-validation restore; the zero function before the
first epoch is a candidate), so the number of epochs of every stage is chosen on validation data.
Without one, the final state is kept; ``epochs`` may then give each stage its own count, e.g. the
counts :func:`select_srl_epochs` chose by cross-validation: stage k runs on K folds in lockstep, every
fold's Q_k trained on its training part, and e_k minimizes the fold-averaged validation loss of the
sum (the refit on all the data then trains stage k for exactly e_k epochs). A stage is accepted
only if it lowers the monitored loss (the validation loss of the sum when a validation set is given,
else the training loss) by more than the fraction ``min_rel_decrease`` and does not raise the
training loss; the first stage that fails is discarded and SRL stops. Hence neither the monitored nor the training loss increases from one kept
stage to the next.

Every stage is written to the growth log like a growth event (``event: "growth"``, ``method: "srl"``,
training loss before/after and its change, the kept epoch, parameter counts, wall time), its epochs as
epoch records.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from .checkpoint import NETWORKS, register_network
from .networks import PlainMLP, count_parameters
from .strategies import FixedBaseline
from .trainer import RunLog, evaluate_loss, grow

__all__ = ["ResidualSum", "SRLResult", "select_srl_epochs", "sequential_residual_learning"]


@register_network
class ResidualSum(nn.Module):
    """f(x) = base(x) + Σ_k corrections[k](x): one module, saveable with :func:`growth.save`."""

    def __init__(self, base: nn.Module, corrections=()):
        super().__init__()
        self.base = base
        self.corrections = nn.ModuleList(corrections)

    @property
    def n_blocks(self) -> Optional[int]:
        return getattr(self.base, "n_blocks", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        for q in self.corrections:
            y = y + q(x)
        return y

    def architecture(self) -> dict:
        def spec(m):
            return {"class": type(m).__name__, "architecture": m.architecture()}
        return {"base": spec(self.base), "corrections": [spec(q) for q in self.corrections]}

    @classmethod
    def from_architecture(cls, arch: dict) -> "ResidualSum":
        def build(spec):
            return NETWORKS[spec["class"]].from_architecture(spec["architecture"])
        return cls(build(arch["base"]), [build(s) for s in arch["corrections"]])


@dataclass
class SRLResult:
    model: ResidualSum
    history: list
    stop_reason: str


def sequential_residual_learning(
        model: nn.Module, train: tuple, val: Optional[tuple] = None, *, n_stages: int = 4,
        width: int = 10, n_hidden: int = 2, activation: str = "relu", epochs: Union[int, Sequence[int]] = 200,
        batch_size: Optional[int] = 100, optimizer: Optional[Callable] = None,
        min_rel_decrease: float = 0.0, seed: int = 0, loss_fn: Optional[Callable] = None,
        out_dir: Union[str, os.PathLike, None] = None, callback: Optional[Callable] = None) -> SRLResult:
    """Fit up to ``n_stages`` small networks (``n_hidden`` hidden layers of ``width``, ``activation``;
    the sources: 2 × 10, ReLU, batch 100) to ``model`` by the task loss ``loss_fn`` of the sum
    (default MSE: the training residual; cross-entropy for logits), see the module docstring.
    ``epochs`` is the most a stage trains (with ``val`` the best-validation epoch is kept), or one
    count per stage, e.g. chosen by :func:`select_srl_epochs` (then ``n_stages`` = their number).
    ``model`` is not modified; its parameters are frozen inside the result.
    ``out_dir``/``callback`` as in :func:`growth.grow` (the records, each tagged ``"phase": "srl"``, are
    appended to ``log.jsonl``; the callback's network is the growing sum).
    """
    loss_fn = nn.MSELoss() if loss_fn is None else loss_fn
    if not isinstance(epochs, int):
        n_stages, per_stage = len(epochs), list(epochs)
    else:
        per_stage = [epochs] * n_stages
    x, t = train
    result = _frozen_sum(model)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    logger = RunLog(None if out_dir is None else Path(out_dir), callback, result)
    monitored = val if val is not None else train
    fit = dict(width=width, n_hidden=n_hidden, activation=activation, batch_size=batch_size, optimizer=optimizer,
               seed=seed, loss_fn=loss_fn)

    def loss(data) -> float:
        return evaluate_loss(result, loss_fn, *data)

    reason = "max stages"
    for k, stage_epochs in enumerate(per_stage, start=1):
        t0 = time.perf_counter()
        before, monitored_before, params_before = loss(train), loss(monitored), count_parameters(result)
        q, curve, states = _fit_stage(result, train, val, k, stage_epochs, keep_states=False,
                                      on_epoch=lambda record, k=k: logger({**record, "phase": "srl", "stage": k}),
                                      **fit)
        kept_epoch = stage_epochs
        if val is not None:
            kept_epoch = min(range(len(curve)), key=curve.__getitem__)
            q.load_state_dict(states[kept_epoch])
        _append(result, q)
        after, monitored_after = loss(train), loss(monitored)
        accepted = monitored_after < monitored_before * (1.0 - min_rel_decrease) and after <= before
        logger({"event": "growth", "method": "srl", "stage": k, "location": "output", "score": None,
                "eps": None, "predicted_decrease": None, "loss_before": before, "loss_after": after,
                "actual_change": after - before, "monitored_before": monitored_before,
                "monitored_after": monitored_after, "kept_epoch": kept_epoch, "accepted": accepted,
                "parameters_before": params_before, "parameters_after": count_parameters(result),
                "wall_time_s": time.perf_counter() - t0, "phase": "srl"})
        if not accepted:
            del result.corrections[-1]
            reason = "no decrease"
            break
    logger({"event": "stop", "method": "srl", "stage": len(result.corrections), "reason": reason, "phase": "srl"})
    return SRLResult(result, logger.records, reason)


def select_srl_epochs(models: Sequence[nn.Module], folds: Sequence[tuple], *, n_stages: int = 4,
                      width: int = 10, n_hidden: int = 2, activation: str = "relu", epochs: int = 200,
                      batch_size: Optional[int] = 100, optimizer: Optional[Callable] = None,
                      min_rel_decrease: float = 0.0, seed: int = 0,
                      loss_fn: Optional[Callable] = None) -> list[int]:
    """The epochs of every SRL stage chosen by cross-validation: ``models[i]`` was trained on
    ``folds[i] = (train_i, val_i)``'s training part. Stage k trains Q_k on every fold for ``epochs``
    epochs (the settings as in :func:`sequential_residual_learning`) and takes the epoch e_k ≥ 0 that
    minimizes the validation loss averaged over the folds, V_k(e) = mean_i J(F^i_{k−1} + Q^i_k(e); val_i)
    (e = 0: Q_k = 0); every fold then keeps its Q_k at e_k. Selection stops at the first stage with
    V_k(e_k) ≥ (1 − ``min_rel_decrease``)·V_k(0), which is not counted. Returns [e_1, ..., e_K], for
    ``sequential_residual_learning(model, all_data, epochs=[e_1, ..., e_K])`` on the pooled data.
    """
    loss_fn = nn.MSELoss() if loss_fn is None else loss_fn
    sums = [_frozen_sum(m) for m in models]
    chosen = []
    for k in range(1, n_stages + 1):
        fits = [_fit_stage(s, train, val, k, epochs, keep_states=True, width=width, n_hidden=n_hidden,
                           activation=activation, batch_size=batch_size, optimizer=optimizer, seed=seed,
                           loss_fn=loss_fn) for s, (train, val) in zip(sums, folds)]
        mean = [sum(c) / len(fits) for c in zip(*(curve for _, curve, _ in fits))]
        best = min(range(len(mean)), key=mean.__getitem__)
        if not mean[best] < mean[0] * (1.0 - min_rel_decrease):
            break
        chosen.append(best)
        for s, (q, _, states) in zip(sums, fits):
            q.load_state_dict(states[best])
            _append(s, q)
    return chosen


def _frozen_sum(model: nn.Module) -> ResidualSum:
    """A new ResidualSum over ``model`` (continuing its corrections if it is one), all frozen."""
    result = (ResidualSum(model.base, list(model.corrections)) if isinstance(model, ResidualSum)
              else ResidualSum(model))
    for p in result.parameters():
        p.requires_grad_(False)
    return result


def _append(result: ResidualSum, q: nn.Module) -> None:
    result.corrections.append(q)
    for p in q.parameters():
        p.requires_grad_(False)


def _fit_stage(result: ResidualSum, train: tuple, val: Optional[tuple], k: int, epochs: int, *, width, n_hidden,
               activation, batch_size, optimizer, seed, loss_fn, keep_states: bool,
               on_epoch: Optional[Callable] = None) -> tuple:
    """Train a fresh Q_k on top of ``result`` (frozen) for ``epochs`` epochs; returns (Q_k, the
    validation loss of the sum after 0..epochs epochs or [] without ``val``, Q_k's state after
    0..epochs epochs, or only the best-validation one (at its index, others None) unless ``keep_states``)."""
    x = train[0]
    ref = next(result.parameters())
    with torch.no_grad():
        n_out = result(x[:1]).shape[1]
    q = _fresh_network(x.shape[1], n_out, width, n_hidden, activation, seed + k, ref)

    def with_offset(data):  # [x, F_{k−1}(x)], the targets unchanged
        with torch.no_grad():
            return torch.cat([data[0], result(data[0])], dim=1), data[1]

    curve = [] if val is None else [evaluate_loss(result, loss_fn, *val)]
    states = [copy.deepcopy(q.state_dict())]

    def record(r, _net=None):
        if r["event"] != "epoch":
            return
        if on_epoch is not None:
            on_epoch(r)
        if val is not None:
            curve.append(r["val_loss"])
            best = keep_states or r["val_loss"] < min(curve[:-1])
            states.append(copy.deepcopy(q.state_dict()) if best else None)

    grow(_Offset(q, x.shape[1]), FixedBaseline(), with_offset(train), None if val is None else with_offset(val),
         loss_fn=loss_fn, epochs_per_stage=epochs, batch_size=batch_size, optimizer=optimizer, seed=seed + k,
         progress=False, callback=record)
    return q, curve, states


class _Offset(nn.Module):
    """``[x, F(x)] ↦ F(x) + q(x)``: the correction ``q`` on top of a fixed prediction given as the
    last input columns (``n_in`` = the number of columns of x)."""

    def __init__(self, q: nn.Module, n_in: int):
        super().__init__()
        self.q, self.n_in = q, n_in

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, self.n_in:] + self.q(z[:, :self.n_in])


def _fresh_network(n_in, n_out, width, n_hidden, activation, seed, ref) -> PlainMLP:
    """PlainMLP with ``n_hidden`` hidden layers, PyTorch's default init drawn under ``seed`` (the
    global RNG is left as it was), and a zero head: the network starts as the zero function."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        q = PlainMLP(n_in, n_out, width, n_hidden - 1, activation=activation, input_activation=activation)
    with torch.no_grad():
        q.head.weight.zero_()
        q.head.bias.zero_()
    return q.to(device=ref.device, dtype=ref.dtype)

