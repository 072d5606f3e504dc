"""The growth trainer: one loop for every growth method; a method is a :class:`Strategy`.

``grow(net, strategy, train, val)`` runs *stages*. A stage trains the network for
``epochs_per_stage`` epochs (Adam by default) on the trainable parameters the strategy names; then
the strategy may post-process (``end_stage``), the stopping tests run, and otherwise the strategy
grows the network by one step (``grow``) and the next stage starts. The optimizer state (e.g. Adam
moments) of every parameter that survives a growth step and stays trainable is carried into the
next stage, keyed by the ``Parameter`` object itself; new parameters start fresh.

Stopping: validation plateau (the validation loss at the end of a stage did not improve on the best
earlier stage by a relative ``min_rel_improvement`` for ``patience`` stages), ``max_stages``,
``max_blocks`` (depth), the strategy's own ``should_stop``, or ``grow`` returning None (no proposal
promises a decrease).

Outputs (only with ``out_dir``): ``log.jsonl`` (one JSON object per epoch, per stage end and per
growth event) and ``checkpoints/stage_NNN.pt`` written at the start of every stage, from which
``resume=True`` continues bit for bit; ``network.pt`` (:func:`growth.save`) at the end. Without
``out_dir`` everything stays in memory and ``callback(record)`` sees each log record.
The loss convention everywhere: ``loss_fn(outputs, targets)`` is the *mean* over the batch, and J is
the mean over all training samples.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import torch
from torch import nn

from .checkpoint import network_from_payload, network_payload, save
from .networks import count_parameters, set_trainable

__all__ = ["Context", "Strategy", "GrowResult", "grow", "evaluate_loss", "carry_optimizer"]

log = logging.getLogger("growth")
Data = tuple[torch.Tensor, torch.Tensor]


def evaluate_loss(net: nn.Module, loss_fn: Callable, inputs: torch.Tensor, targets: torch.Tensor,
                  batch_size: int = 8192) -> float:
    """J = mean over samples of ``loss_fn``, evaluated without gradients in batches."""
    total, n = 0.0, inputs.shape[0]
    with torch.no_grad():
        for i in range(0, n, batch_size):
            xb, yb = inputs[i:i + batch_size], targets[i:i + batch_size]
            total += float(loss_fn(net(xb), yb)) * xb.shape[0]
    return total / n


@dataclass
class Context:
    """What the trainer tells a strategy. Strategies read it; they draw random numbers only from
    ``generator`` (its state is checkpointed, which makes runs deterministic and resumable).

    ``stage`` counts from 0 (the network as given) and increases by one per growth step; ``epoch``
    is the number of epochs trained so far; ``history`` holds every log record so far.
    """

    stage: int
    epoch: int
    train: Data
    val: Optional[Data]
    loss_fn: Callable
    batch_size: int
    device: torch.device
    generator: torch.Generator
    history: list = field(default_factory=list)
    eval_batch_size: int = 8192

    def loss(self, net: nn.Module, data: Optional[Data] = None) -> float:
        """J(net) on ``data`` (default: the training set), no gradients."""
        inputs, targets = self.train if data is None else data
        return evaluate_loss(net, self.loss_fn, inputs, targets, self.eval_batch_size)

    def val_loss(self, net: nn.Module) -> float:
        """Validation loss, or the training loss when no validation set was given."""
        return self.loss(net, self.val)


class Strategy:
    """A growth method, as the trainer sees it. Subclass and override what the method needs.

    The trainer calls, in this order:

    * ``check(net)`` once before training: raise ``ValueError`` if the method cannot work on
      ``net`` (wrong activation, wrong network type, ...).
    * ``trainable(net, ctx)`` at the start of every stage: the parameters (or modules) trained in
      this stage; everything else gets ``requires_grad = False`` (frozen). Default: all.
    * per mini-batch: ``outputs = forward(net, inputs, ctx)`` (default ``net(inputs)``; override it to
      also record hidden states, e.g. ``net(inputs, location_hook=...)``, for a penalty), then
      ``loss = loss_fn(outputs, targets) + penalty(net, inputs, targets, outputs, ctx)``;
      ``penalty`` returns a scalar tensor or None (default None). ``ctx.stage`` lets its weight
      depend on the stage (e.g. γ_l = γ0 ρ^(l−2)).
    * ``end_stage(net, ctx) -> dict`` after the stage's epochs: post-processing such as
      hard-thresholding; the returned dict is merged into the stage's log record.
    * ``should_stop(net, ctx) -> str | None``: the method's own stopping test (a reason, or None).
      ``ctx.history`` has every epoch/stage record so far.
    * ``grow(net, ctx) -> dict | None``: change ``net`` *in place* by one growth step and return
      a JSON-able dict describing it (e.g. ``location``, ``score``, ``eps``, ``predicted_decrease``);
      return None to stop (nothing promises a decrease). The trainer adds the training loss
      before/after, its actual change, the parameter counts and the wall time. A parameter that
      must start with a fresh optimizer state must be a new ``Parameter`` object (e.g. replace a
      head by a new ``nn.Linear`` rather than re-initializing it in place).
    * ``state_dict()`` / ``load_state_dict(state)``: whatever the strategy must remember across a
      checkpoint (default: nothing).

    Strategies work on any ``nn.Module`` they accept in ``check``; the trainer itself only needs
    ``net(inputs)`` and, for the ``max_blocks`` test, ``net.n_blocks``.
    """

    name = "strategy"

    def check(self, net: nn.Module) -> None:
        pass

    def trainable(self, net: nn.Module, ctx: Context) -> Iterable:
        return list(net.parameters())

    def forward(self, net: nn.Module, inputs: torch.Tensor, ctx: Context) -> torch.Tensor:
        return net(inputs)

    def penalty(self, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                outputs: torch.Tensor, ctx: Context) -> Optional[torch.Tensor]:
        return None

    def end_stage(self, net: nn.Module, ctx: Context) -> dict:
        return {}

    def should_stop(self, net: nn.Module, ctx: Context) -> Optional[str]:
        return None

    def grow(self, net: nn.Module, ctx: Context) -> Optional[dict]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class GrowResult:
    net: nn.Module
    history: list
    stop_reason: str

    @property
    def val_loss(self) -> float:
        return [r for r in self.history if r["event"] == "stage"][-1]["val_loss"]


def carry_optimizer(old: Optional[torch.optim.Optimizer], params: list, factory: Callable) -> torch.optim.Optimizer:
    """A new optimizer over ``params`` that keeps ``old``'s per-parameter state (same objects)."""
    new = factory(params)
    if old is not None:
        for p in params:
            if p in old.state:
                new.state[p] = old.state[p]
    return new


def _default_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)


class RunLog:
    """The run's records: kept in memory, appended to `out_dir/log.jsonl` (one JSON object per
    line) when a directory is given, and passed to `callback` as they come."""

    def __init__(self, out_dir: Optional[Path], callback: Optional[Callable]):
        self.records: list = []
        self.path = None if out_dir is None else out_dir / "log.jsonl"
        self.callback = callback

    def rewrite(self, records: list) -> None:
        self.records = list(records)
        if self.path is not None:
            self.path.write_text("".join(json.dumps(r) + "\n" for r in records))

    def __call__(self, record: dict) -> None:
        self.records.append(record)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if self.callback is not None:
            self.callback(record)


def _latest_checkpoint(resume: Union[bool, str, os.PathLike], out_dir: Optional[Path]) -> Path:
    if resume is True:
        if out_dir is None:
            raise ValueError("resume=True needs out_dir")
        found = sorted((out_dir / "checkpoints").glob("stage_*.pt"))
        if not found:
            raise FileNotFoundError(f"no checkpoint to resume from in {out_dir / 'checkpoints'}")
        return found[-1]
    return Path(resume)


def grow(net: Optional[nn.Module], strategy: Strategy, train: Data, val: Optional[Data] = None, *,
         loss_fn: Optional[Callable] = None, epochs_per_stage: int = 100, max_stages: int = 10,
         max_blocks: Optional[int] = None, patience: int = 1, min_rel_improvement: float = 0.0,
         batch_size: Optional[int] = None, optimizer: Optional[Callable] = None, seed: int = 0,
         device: Union[str, torch.device, None] = None, out_dir: Union[str, os.PathLike, None] = None,
         resume: Union[bool, str, os.PathLike] = False, callback: Optional[Callable] = None,
         progress: Optional[bool] = None) -> GrowResult:
    """Train ``net`` and grow it with ``strategy`` (see the module docstring).

    ``train``/``val`` are ``(inputs, targets)`` tensors; ``batch_size=None`` is full batch;
    ``optimizer`` is a factory ``params -> torch.optim.Optimizer`` (default Adam, lr 1e-3); ``seed``
    seeds the generator that shuffles mini-batches and that strategies draw from; ``resume`` is
    True (latest checkpoint in ``out_dir``) or a checkpoint path, in which case ``net`` may be None.
    ``progress``: a tqdm bar over epochs (default: only when stderr is a terminal).
    """
    loss_fn = nn.MSELoss() if loss_fn is None else loss_fn
    factory = _default_optimizer if optimizer is None else optimizer
    device = torch.device(device) if device is not None else (
        next(net.parameters()).device if net is not None else torch.device("cpu"))
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    logger = RunLog(out, callback)
    generator = torch.Generator().manual_seed(seed)
    train = tuple(t.to(device) for t in train)
    val = None if val is None else tuple(t.to(device) for t in val)
    n_train = train[0].shape[0]
    batch_size = n_train if batch_size is None else min(batch_size, n_train)
    ctx = Context(0, 0, train, val, loss_fn, batch_size, device, generator)

    saved_opt, best, bad = None, math.inf, 0
    if resume:
        ckpt = torch.load(_latest_checkpoint(resume, out), map_location="cpu", weights_only=False)
        net = network_from_payload(ckpt["net"])
        generator.set_state(ckpt["generator"])
        strategy.load_state_dict(ckpt["strategy"])
        ctx.stage, ctx.epoch = ckpt["stage"], ckpt["epoch"]
        best, bad, saved_opt = ckpt["best"], ckpt["bad"], ckpt["optimizer"]
        logger.rewrite(ckpt["history"])
    else:
        strategy.check(net)
    ctx.history = logger.records
    net.to(device)

    def checkpoint():
        if out is not None:
            torch.save({"net": network_payload(net), "optimizer": opt.state_dict(),
                        "generator": generator.get_state(), "strategy": strategy.state_dict(),
                        "stage": ctx.stage, "epoch": ctx.epoch, "best": best, "bad": bad,
                        "history": logger.records}, out / "checkpoints" / f"stage_{ctx.stage:03d}.pt")

    opt = carry_optimizer(None, set_trainable(net, strategy.trainable(net, ctx)), factory)
    if saved_opt is not None:
        opt.load_state_dict(saved_opt)
    else:
        checkpoint()

    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        from tqdm.auto import tqdm
        bar = tqdm(desc=strategy.name, unit="epoch", initial=ctx.epoch)

    while True:
        net.train()
        for _ in range(epochs_per_stage):
            t0 = time.perf_counter()
            train_loss = _train_epoch(net, strategy, opt, ctx)
            ctx.epoch += 1
            val_loss = ctx.val_loss(net) if val is not None else train_loss
            logger({"event": "epoch", "stage": ctx.stage, "epoch": ctx.epoch, "train_loss": train_loss,
                    "val_loss": val_loss, "wall_time_s": time.perf_counter() - t0})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(stage=ctx.stage, train=f"{train_loss:.3g}", val=f"{val_loss:.3g}")

        record = {"event": "stage", "stage": ctx.stage, "epoch": ctx.epoch, **strategy.end_stage(net, ctx)}
        val_loss = ctx.val_loss(net)
        record.update(train_loss=ctx.loss(net), val_loss=val_loss,
                      n_parameters=count_parameters(net), n_blocks=getattr(net, "n_blocks", None))
        logger(record)
        log.info("%s stage %d: train %.4g val %.4g, %d parameters", strategy.name, ctx.stage,
                 record["train_loss"], val_loss, record["n_parameters"])
        if val_loss < best * (1.0 - min_rel_improvement):
            best, bad = val_loss, 0
        else:
            bad += 1
        reason = ("validation plateau" if bad >= patience else
                  "max stages" if ctx.stage + 1 >= max_stages else
                  "max depth" if max_blocks is not None and getattr(net, "n_blocks", 0) >= max_blocks else
                  strategy.should_stop(net, ctx))
        if reason:
            break

        loss_before, params_before, t0 = record["train_loss"], count_parameters(net), time.perf_counter()
        event = strategy.grow(net, ctx)
        if event is None:
            reason = "no proposal promises a decrease"
            break
        net.to(device)
        loss_after = ctx.loss(net)
        logger({"event": "growth", "stage": ctx.stage, **event, "loss_before": loss_before,
                "loss_after": loss_after, "actual_change": loss_after - loss_before,
                "parameters_before": params_before, "parameters_after": count_parameters(net),
                "wall_time_s": time.perf_counter() - t0})
        ctx.stage += 1
        opt = carry_optimizer(opt, set_trainable(net, strategy.trainable(net, ctx)), factory)
        checkpoint()

    if bar is not None:
        bar.close()
    logger({"event": "stop", "stage": ctx.stage, "epoch": ctx.epoch, "reason": reason})
    if out is not None:
        save(net, out / "network.pt")
    return GrowResult(net, logger.records, reason)


def _train_epoch(net: nn.Module, strategy: Strategy, opt: torch.optim.Optimizer, ctx: Context) -> float:
    """One epoch of mini-batch training; returns the mean data loss over the epoch's batches."""
    inputs, targets = ctx.train
    n, bs = inputs.shape[0], ctx.batch_size
    order = None if bs >= n else torch.randperm(n, generator=ctx.generator).to(inputs.device)
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for i in range(0, n, bs):
        if order is None:
            xb, yb = inputs, targets
        else:
            idx = order[i:i + bs]
            xb, yb = inputs[idx], targets[idx]
        opt.zero_grad(set_to_none=True)
        outputs = strategy.forward(net, xb, ctx)
        loss = ctx.loss_fn(outputs, yb)
        extra = strategy.penalty(net, xb, yb, outputs, ctx)
        (loss if extra is None else loss + extra).backward()
        opt.step()
        total += loss.detach() * xb.shape[0]
    return float(total) / n
