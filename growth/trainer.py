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
``out_dir`` everything stays in memory. ``callback(record, net)`` sees each log record together
with the network being trained (the one callback signature of the package).
The loss convention everywhere: ``loss_fn(outputs, targets)`` is the *mean* over the batch, and J is
the mean over all training samples.
"""
from __future__ import annotations

import itertools
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
from torch.utils.data import DataLoader

from .checkpoint import network_from_payload, network_payload, read, save
from .data import Data, as_data, batches, n_samples
from .divergence import DivergenceGuard
from .networks import count_parameters, set_trainable

__all__ = ["Context", "Strategy", "GrowResult", "StopRules", "grow", "evaluate_loss", "carry_optimizer"]

log = logging.getLogger("growth")
Callback = Callable[[dict, Optional[nn.Module]], None]


def evaluate_loss(net: nn.Module, loss_fn: Callable, inputs, targets: Optional[torch.Tensor] = None,
                  batch_size: int = 8192, device=None) -> float:
    """J = mean over samples of ``loss_fn``, evaluated without gradients in batches; the data are
    ``inputs, targets`` tensors or a Dataset/DataLoader as ``inputs`` (its batches moved to ``device``)."""
    data = as_data(inputs, targets)
    total, n = 0.0, n_samples(data)
    with torch.no_grad():
        for xb, yb in batches(data, batch_size, device):
            total += float(loss_fn(net(xb), yb)) * xb.shape[0]
    return total / n


@dataclass
class Context:
    """What the trainer tells a strategy. Strategies read it; they draw random numbers only from
    ``generator`` (its state is checkpointed, which makes runs deterministic and resumable).

    ``stage`` counts from 0 (the network as given) and increases by one per growth step; ``epoch``
    is the number of epochs trained so far; ``history`` holds every log record so far; ``rows`` are the
    positions in ``train`` of the mini-batch being trained (None: every row, in order, or data read
    from a loader), for a penalty that needs per-sample data of its rows. ``train``/``val`` are
    ``(inputs, targets)`` tensors on ``device`` or a Dataset/DataLoader (:mod:`growth.data`).
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
    rows: Optional[torch.Tensor] = None

    def loss(self, net: nn.Module, data: Optional[Data] = None) -> float:
        """J(net) on ``data`` (default: the training set), no gradients."""
        return evaluate_loss(net, self.loss_fn, self.train if data is None else data,
                             batch_size=self.eval_batch_size, device=self.device)

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
    """The run's records: kept in memory, appended to ``out_dir/log.jsonl`` (one JSON object per
    line) when a directory is given, and passed as ``callback(record, model)`` as they come, ``model``
    being the network the records are about (set by the owner of the log)."""

    def __init__(self, out_dir: Optional[Path], callback: Optional[Callback], model: Optional[nn.Module] = None):
        self.records: list = []
        self.path = None if out_dir is None else out_dir / "log.jsonl"
        self.callback = callback
        self.model = model

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
            self.callback(record, self.model)


@dataclass(frozen=True)
class StopRules:
    """When ``grow`` stops (module docstring): after ``max_stages`` stages, at ``max_blocks`` blocks,
    or when the validation loss has not fallen below ``(1 − min_rel_improvement)·best`` for
    ``patience`` consecutive stages."""

    max_stages: int = 10
    max_blocks: Optional[int] = None
    patience: float = 1
    min_rel_improvement: float = 0.0


@dataclass
class Plateau:
    """The validation-plateau test's memory: the best stage-end validation loss and the number of
    stages since it last improved (checkpointed)."""

    best: float = math.inf
    bad: int = 0

    def update(self, val_loss: float, min_rel_improvement: float) -> None:
        if val_loss < self.best * (1.0 - min_rel_improvement):
            self.best, self.bad = val_loss, 0
        else:
            self.bad += 1


def _latest_checkpoint(resume: Union[bool, str, os.PathLike], out_dir: Optional[Path]) -> Path:
    if resume is True:
        if out_dir is None:
            raise ValueError("resume=True needs out_dir")
        found = sorted((out_dir / "checkpoints").glob("stage_*.pt"))
        if not found:
            raise FileNotFoundError(f"no checkpoint to resume from in {out_dir / 'checkpoints'}")
        return found[-1]
    return Path(resume)


class _Run:
    """One ``grow`` call: the network, the strategy, the optimizer and everything a checkpoint holds.
    Its methods are the trainer's named steps."""

    def __init__(self, strategy: Strategy, ctx: Context, factory: Callable, rules: StopRules,
                 out: Optional[Path], logger: RunLog):
        self.guard = DivergenceGuard()  # rolls back a non-finite or exploding epoch (growth/divergence.py)
        self.strategy, self.ctx, self.factory, self.rules = strategy, ctx, self.guard.scaled(factory), rules
        self.out, self.logger = out, logger
        self.net: Optional[nn.Module] = None
        self.opt: Optional[torch.optim.Optimizer] = None
        self.plateau = Plateau()
        self.bar = None
        self.last_val: Optional[tuple[list, float]] = None  # (state_key at the last epoch's end, its val loss)

    # -- start: a fresh network or a checkpoint ----------------------------------------------------
    def start(self, net: Optional[nn.Module], resume: Union[bool, str, os.PathLike]) -> None:
        saved_opt = self.resume(resume, net) if resume else None
        if not resume:
            self.strategy.check(net)
            self.net = net
        self.logger.model = self.net
        self.ctx.history = self.logger.records
        self.net.to(self.ctx.device)
        self.opt = carry_optimizer(None, self.trainable(), self.factory)
        if saved_opt is not None:
            self.opt.load_state_dict(saved_opt)
        else:
            self.checkpoint()

    def resume(self, resume: Union[bool, str, os.PathLike], model: Optional[nn.Module]) -> dict:
        """Restore the network (a wrapped one around ``model``, a fresh instance of the user's class),
        generator, strategy, counters and log; return the optimizer state."""
        ckpt = read(_latest_checkpoint(resume, self.out), map_location="cpu")
        self.net = network_from_payload(ckpt["net"], model=model)
        self.ctx.generator.set_state(ckpt["generator"])
        self.strategy.load_state_dict(ckpt["strategy"])
        self.ctx.stage, self.ctx.epoch = ckpt["stage"], ckpt["epoch"]
        self.plateau = Plateau(ckpt["best"], ckpt["bad"])
        self.logger.rewrite(ckpt["history"])
        return ckpt["optimizer"]

    def trainable(self) -> list:
        return set_trainable(self.net, self.strategy.trainable(self.net, self.ctx))

    def checkpoint(self) -> None:
        """``checkpoints/stage_NNN.pt``: everything :meth:`resume` needs to continue bit for bit."""
        if self.out is None:
            return
        torch.save({"net": network_payload(self.net), "optimizer": self.opt.state_dict(),
                    "generator": self.ctx.generator.get_state(), "strategy": self.strategy.state_dict(),
                    "stage": self.ctx.stage, "epoch": self.ctx.epoch, "best": self.plateau.best,
                    "bad": self.plateau.bad, "history": self.logger.records},
                   self.out / "checkpoints" / f"stage_{self.ctx.stage:03d}.pt")

    # -- one stage ---------------------------------------------------------------------------------
    def train_stage(self, epochs: int) -> None:
        """``epochs`` epochs of mini-batch training, one ``epoch`` record each."""
        ctx = self.ctx
        self.net.train()
        for _ in range(epochs):
            t0 = time.perf_counter()
            train_loss, val_loss = self.guard.epoch(self.net, self.opt, ctx, self.logger,
                                                    lambda: _train_epoch(self.net, self.strategy, self.opt, ctx))
            ctx.epoch += 1
            self.last_val = (_state_key(self.net), val_loss)
            self.logger({"event": "epoch", "stage": ctx.stage, "epoch": ctx.epoch, "train_loss": train_loss,
                         "val_loss": val_loss, "wall_time_s": time.perf_counter() - t0})
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(stage=ctx.stage, train=f"{train_loss:.3g}", val=f"{val_loss:.3g}")

    def evaluate(self) -> dict:
        """The strategy's post-processing, then the stage record (losses, size), logged."""
        net, ctx = self.net, self.ctx
        record = {"event": "stage", "stage": ctx.stage, "epoch": ctx.epoch, **self.strategy.end_stage(net, ctx)}
        train_loss = ctx.loss(net)
        record.update(train_loss=train_loss, val_loss=self.val_loss(train_loss),
                      n_parameters=count_parameters(net), n_blocks=getattr(net, "n_blocks", None))
        self.logger(record)
        log.info("%s stage %d: train %.4g val %.4g, %d parameters", self.strategy.name, ctx.stage,
                 record["train_loss"], record["val_loss"], record["n_parameters"])
        return record

    def val_loss(self, train_loss: float) -> float:
        """The validation loss of the network as it is (the training loss without a validation set),
        reused from the last epoch when no parameter or buffer changed since (the same evaluation of
        the same tensors: the same number, without a second pass over the validation set)."""
        if self.ctx.val is None:
            return train_loss
        if self.last_val is not None and _same_state(self.last_val[0], _state_key(self.net)):
            return self.last_val[1]
        return self.ctx.val_loss(self.net)

    def stop_reason(self, record: dict) -> Optional[str]:
        """Why to stop after this stage, or None to grow."""
        rules, net = self.rules, self.net
        self.plateau.update(record["val_loss"], rules.min_rel_improvement)
        if self.plateau.bad >= rules.patience:
            return "validation plateau"
        if self.ctx.stage + 1 >= rules.max_stages:
            return "max stages"
        if rules.max_blocks is not None and getattr(net, "n_blocks", 0) >= rules.max_blocks:
            return "max depth"
        return self.strategy.should_stop(net, self.ctx)

    def grow_step(self, loss_before: float) -> Optional[str]:
        """One growth step of the strategy, logged; the next stage's optimizer carries the moments
        of surviving parameters. Returns a stop reason when the strategy declines to grow."""
        net, ctx = self.net, self.ctx
        params_before, t0 = count_parameters(net), time.perf_counter()
        event = self.strategy.grow(net, ctx)
        if event is None:
            return "no proposal promises a decrease"
        net.to(ctx.device)
        loss_after = ctx.loss(net)
        self.logger({"event": "growth", "stage": ctx.stage, **event, "loss_before": loss_before,
                     "loss_after": loss_after, "actual_change": loss_after - loss_before,
                     "parameters_before": params_before, "parameters_after": count_parameters(net),
                     "wall_time_s": time.perf_counter() - t0})
        ctx.stage += 1
        self.opt = carry_optimizer(self.opt, self.trainable(), self.factory)
        return None

    def finish(self, reason: str) -> GrowResult:
        if self.bar is not None:
            self.bar.close()
        self.logger({"event": "stop", "stage": self.ctx.stage, "epoch": self.ctx.epoch, "reason": reason})
        if self.out is not None:
            save(self.net, self.out / "network.pt")
        return GrowResult(self.net, self.logger.records, reason)


def grow(net: Optional[nn.Module], strategy: Strategy, train: Data, val: Optional[Data] = None, *,
         loss_fn: Optional[Callable] = None, epochs_per_stage: int = 100, max_stages: int = 10,
         max_blocks: Optional[int] = None, patience: int = 1, min_rel_improvement: float = 0.0,
         batch_size: Optional[int] = None, optimizer: Optional[Callable] = None, seed: int = 0,
         device: Union[str, torch.device, None] = None, out_dir: Union[str, os.PathLike, None] = None,
         resume: Union[bool, str, os.PathLike] = False, callback: Optional[Callback] = None,
         progress: Optional[bool] = None) -> GrowResult:
    """Train ``net`` and grow it with ``strategy`` (see the module docstring).

    ``train``/``val`` are ``(inputs, targets)`` tensors or a ``Dataset``/``DataLoader`` of such pairs
    (:mod:`growth.data`); ``batch_size=None`` is full batch (tensors and Datasets; a DataLoader brings
    its own batches, order and shuffling, so that a run on it is as deterministic as the loader);
    ``optimizer`` is a factory ``params -> torch.optim.Optimizer`` (default Adam, lr 1e-3); ``seed``
    seeds the generator that shuffles mini-batches and that strategies draw from; ``resume`` is
    True (latest checkpoint in ``out_dir``) or a checkpoint path, in which case ``net`` may be None
    (for a run on a wrapped model: a fresh, unwrapped instance of the user's model, as for :func:`growth.load`).
    ``callback(record, net)`` sees every log record with the network being trained.
    ``progress``: a tqdm bar over epochs (default: only when stderr is a terminal).
    """
    device = torch.device(device) if device is not None else (
        next(net.parameters()).device if net is not None else torch.device("cpu"))
    out = _output_dir(out_dir)
    ctx = _context(train, val, loss_fn, batch_size, device, seed)
    run = _Run(strategy, ctx, optimizer or _default_optimizer,
               StopRules(max_stages, max_blocks, patience, min_rel_improvement), out, RunLog(out, callback))
    run.start(net, resume)
    run.bar = _progress_bar(strategy.name, ctx.epoch, progress)
    while True:
        run.train_stage(epochs_per_stage)
        record = run.evaluate()
        reason = run.stop_reason(record) or run.grow_step(record["train_loss"])
        if reason:
            return run.finish(reason)
        run.checkpoint()


def _state_key(net: nn.Module) -> list:
    """The network's parameters and buffers with their version counters (bumped by every in-place
    change, e.g. an optimizer step, a ``load_state_dict`` or hard-thresholding)."""
    return [(t, t._version) for t in itertools.chain(net.parameters(), net.buffers())]


def _same_state(a: list, b: list) -> bool:
    """Whether two :func:`_state_key`\\ s name the same tensors (identity, not values) at the same versions."""
    return len(a) == len(b) and all(s is t and u == v for (s, u), (t, v) in zip(a, b))


def _output_dir(out_dir: Union[str, os.PathLike, None]) -> Optional[Path]:
    if out_dir is None:
        return None
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    return out


def _context(train: Data, val: Optional[Data], loss_fn: Optional[Callable], batch_size: Optional[int],
             device: torch.device, seed: int) -> Context:
    """The strategies' view of the run: tensors on ``device`` (a training Dataset becomes a DataLoader
    of ``batch_size`` shuffled by the run's generator, a validation Dataset one read in order), the
    loss, the seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    train = _on_device(as_data(train), device, batch_size, generator)
    val = None if val is None else _on_device(as_data(val), device, batch_size, None)
    n_train = n_samples(train)
    batch_size = n_train if batch_size is None else min(batch_size, n_train)
    loss_fn = nn.MSELoss() if loss_fn is None else loss_fn
    return Context(0, 0, train, val, loss_fn, batch_size, device, generator)


def _on_device(data: Data, device: torch.device, batch_size: Optional[int],
               generator: Optional[torch.Generator]) -> Data:
    """Tensors moved to ``device``; a Dataset read by a DataLoader of ``batch_size`` (None: one batch),
    shuffled by ``generator`` unless it is None; a DataLoader as it is."""
    if isinstance(data, tuple):
        return tuple(t.to(device) for t in data)
    if isinstance(data, DataLoader):
        return data
    return DataLoader(data, batch_size=batch_size or len(data), shuffle=generator is not None, generator=generator)


def _progress_bar(name: str, initial: int, progress: Optional[bool]):
    """A tqdm bar over epochs (default: only when stderr is a terminal), or None."""
    if not (sys.stderr.isatty() if progress is None else progress):
        return None
    from tqdm.auto import tqdm
    return tqdm(desc=name, unit="epoch", initial=initial)


def _train_epoch(net: nn.Module, strategy: Strategy, opt: torch.optim.Optimizer, ctx: Context) -> float:
    """One epoch of mini-batch training; returns the mean data loss over the epoch's batches."""
    if isinstance(ctx.train, DataLoader):
        return _train_loader_epoch(net, strategy, opt, ctx)
    inputs, targets = ctx.train
    n, bs = inputs.shape[0], ctx.batch_size
    order = None if bs >= n else torch.randperm(n, generator=ctx.generator).to(inputs.device)
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for i in range(0, n, bs):
        if order is None:
            xb, yb, ctx.rows = inputs, targets, None
        else:
            idx = ctx.rows = order[i:i + bs]
            xb, yb = inputs[idx], targets[idx]
        _step(net, strategy, opt, ctx, xb, yb, total)
    return float(total) / n


def _step(net: nn.Module, strategy: Strategy, opt: torch.optim.Optimizer, ctx: Context, xb: torch.Tensor,
          yb: torch.Tensor, total: torch.Tensor) -> None:
    """One optimizer step on the batch; adds the batch's summed data loss to ``total`` in place."""
    opt.zero_grad(set_to_none=True)
    outputs = strategy.forward(net, xb, ctx)
    loss = ctx.loss_fn(outputs, yb)
    extra = strategy.penalty(net, xb, yb, outputs, ctx)
    (loss if extra is None else loss + extra).backward()
    opt.step()
    total += loss.detach() * xb.shape[0]


def _train_loader_epoch(net: nn.Module, strategy: Strategy, opt: torch.optim.Optimizer, ctx: Context) -> float:
    """One epoch over the batches of a DataLoader (moved to ``ctx.device``); ``ctx.rows`` is None."""
    total = torch.zeros((), dtype=torch.float64, device=ctx.device)
    ctx.rows = None
    for xb, yb in batches(ctx.train, device=ctx.device):
        _step(net, strategy, opt, ctx, xb, yb, total)
    return float(total) / n_samples(ctx.train)
