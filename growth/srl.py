"""Sequential residual learning, SRL (Krishnanunni & Bui-Thanh, arXiv:2211.06860; METHODS.md §A).

After any trained network f_1 (layerwise or a baseline), fit small fresh networks Q_1, Q_2, ... one
after another, each by mean squared error to the current training residual

    r_k = t − (f_1(x) + Σ_{j<k} Q_j(x)),      Q_k = argmin_Q mean ‖Q(x) − r_k‖²,

and predict f_1 + Σ_k Q_k. Each Q_k is a :class:`~growth.networks.PlainMLP` trained by the growth
trainer (:func:`growth.grow` with :class:`~growth.strategies.FixedBaseline`), with its head started
at zero so that every stage starts from the previous model's function.

Stopping rule: at most ``n_stages`` stages; a stage is kept only if it lowers the monitored loss
(the validation MSE of the sum when a validation set is given, else the training MSE) by at least
the fraction ``min_rel_decrease``; the first stage that does not is discarded and SRL stops. Hence
the monitored loss never increases from one kept stage to the next.

Every stage is written to the growth log like a growth event (``event: "growth"``, ``method: "srl"``,
training loss before/after and its change, parameter counts, wall time), its epochs as epoch records.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import nn

from .checkpoint import NETWORKS, register_network
from .networks import PlainMLP, count_parameters
from .strategies import FixedBaseline
from .trainer import RunLog, evaluate_loss, grow

__all__ = ["ResidualSum", "SRLResult", "sequential_residual_learning"]


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
        width: int = 10, n_hidden: int = 2, activation: str = "relu", epochs: int = 200,
        batch_size: Optional[int] = 100, optimizer: Optional[Callable] = None,
        min_rel_decrease: float = 0.0, seed: int = 0, loss_fn: Optional[Callable] = None,
        out_dir: Union[str, os.PathLike, None] = None, callback: Optional[Callable] = None) -> SRLResult:
    """Fit up to ``n_stages`` small networks (``n_hidden`` hidden layers of ``width``, ``activation``;
    the sources: 2 × 10, ReLU, 200 epochs, batch 100) to the training residual of ``model``
    (see the module docstring). ``model`` is not modified; its parameters are frozen inside the result.
    ``out_dir``/``callback`` as in :func:`growth.grow` (the records are appended to ``log.jsonl``).
    """
    loss_fn = nn.MSELoss() if loss_fn is None else loss_fn
    x, t = train
    result = (ResidualSum(model.base, list(model.corrections)) if isinstance(model, ResidualSum)
              else ResidualSum(model))
    for p in result.parameters():
        p.requires_grad_(False)
    ref = next(result.parameters())
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    logger = RunLog(None if out_dir is None else Path(out_dir), callback)
    monitored = val if val is not None else train

    def loss(data) -> float:
        return evaluate_loss(result, loss_fn, *data)

    reason = "max stages"
    for k in range(1, n_stages + 1):
        t0 = time.perf_counter()
        before, monitored_before, params_before = loss(train), loss(monitored), count_parameters(result)
        with torch.no_grad():
            residual = t - result(x)
            val_residual = None if val is None else (val[0], val[1] - result(val[0]))
        q = _fresh_network(x.shape[1], t.shape[1], width, n_hidden, activation, seed + k, ref)

        def log_epoch(record, k=k):
            if record["event"] == "epoch":
                logger({**record, "phase": "srl", "stage": k})

        fit = grow(q, FixedBaseline(), (x, residual), val_residual, loss_fn=loss_fn, epochs_per_stage=epochs,
                   batch_size=batch_size, optimizer=optimizer, seed=seed + k, progress=False, callback=log_epoch)
        result.corrections.append(fit.net)
        for p in fit.net.parameters():
            p.requires_grad_(False)
        after, monitored_after = loss(train), loss(monitored)
        accepted = monitored_after <= monitored_before * (1.0 - min_rel_decrease) and after <= before
        logger({"event": "growth", "method": "srl", "stage": k, "location": "output", "score": None,
                "eps": None, "predicted_decrease": None, "loss_before": before, "loss_after": after,
                "actual_change": after - before, "monitored_before": monitored_before,
                "monitored_after": monitored_after, "accepted": accepted,
                "parameters_before": params_before, "parameters_after": count_parameters(result),
                "wall_time_s": time.perf_counter() - t0})
        if not accepted:
            del result.corrections[-1]
            reason = "no decrease"
            break
    logger({"event": "stop", "method": "srl", "stage": len(result.corrections), "reason": reason})
    return SRLResult(result, logger.records, reason)


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

