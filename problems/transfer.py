"""Transfer to a new site or regime: ``python -m problems transfer PROBLEM --source-data FILE
--target-data FILE --method METHOD --n-target N --seed S --preset P --out DIR``.

A **source** network (the problem's ResidualMLP of ``source_blocks`` blocks, trained on the source
dataset's training split with the preset's learning rate and epochs, validation split for nothing but
the record) is trained once per (problem, preset, seed, source dataset) and cached in ``--cache``
(default: ``source/seed_S`` beside ``OUT``); :mod:`growth.checkpoint` files, loaded like any saved
network. The **target** task gets ``N`` labelled samples: the first N of a permutation, seeded by
the run's seed, of the target dataset's training and validation rows (so the sets are nested in N
and the seeds also vary which samples a user happened to have); ``max(2, round(N/5))`` of them are
the validation set that every decision uses, the rest are trained on. The target's test split is
the test set. Inputs and targets are standardized with the *source* statistics (the network was
trained on them; N samples are too few to re-estimate them), so errors are in physical units.

Methods, all with the same epoch budget ``epochs`` on the target (Adam at the preset's learning
rate unless said otherwise; batch size ``min(preset, max(1, n_train // 4))`` so that even N = 10
takes a few steps per epoch):

================  ==============================================================================
``scratch``       a fresh network of the source architecture, all parameters trained
``finetune``      the source network, every parameter trained; the learning rate is chosen among
                  ``lr_factors`` × lr by the target validation loss (each candidate gets the full
                  budget; the selected run is reported)
``head``          the frozen source network, only the head trained
``topological``   frozen base and head + topological-derivative insertion on the target loss
                  (growth.TopologicalStrategy under growth.transfer.FrozenBase): the first block
                  goes in before training, each stage trains the inserted blocks, the next block
                  goes in at the stage end; at most ``insertions`` blocks, ``epochs // insertions``
                  epochs per stage, validation-plateau stopping (as in the growth loop)
``topological_head`` the same with the head trained too: stage 0 trains the head alone, then one
                  block per stage, ``epochs // (insertions + 1)`` epochs per stage
``topological_multi`` as ``topological`` (frozen head), each block with the authors' multi-neuron
                  rule (every eigenvector with eigenvalue ≥ 0.5 λ_max, growth.TopologicalStrategy
                  ``multi_neuron=True``) instead of the single best neuron. Why it exists: the
                  activation has σ'(0) = 0, so a neuron inserted with zero weights and bias has zero
                  gradient for ever; a single-neuron block trains one row of its W (one coordinate
                  of the residual stream), whatever its nominal parameter count
``random``        as ``topological``, but random location and N(0, 0.01²) weights
                  (growth.RandomInsertion); ``--insertions K`` inserts exactly K blocks in stages of
                  the same length (the sweep passes the count of the topological run of the same
                  seed and N), without it at most ``insertions`` with plateau stopping
``lora``          frozen base and head + rank-``rank`` adapters on every linear layer
                  (growth.transfer.add_low_rank_adapters; the head's too), adapters trained
================  ==============================================================================

When the target has other classes (``data.info["classes"]`` differs; MNIST 0–4 → 5–9) the head is
re-initialized for the new classes and trained in every method (``topological`` then equals
``topological_head``, and ``topological_multi`` trains the head too).
Mismatched shapes (sensor count, grid) are refused with one line. Output as ``run``: ``OUT.partial``
renamed to ``OUT`` when finished; a finished run with the same configuration is not redone.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
import functools
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

import growth
from growth.topological import check_td_activation
from common import mpi_rank
from common.errors import UserError
from growth.trainer import Context, Strategy
from growth.transfer import FrozenBase, add_low_rank_adapters, freeze_base
from problems.base import Data, Problem, Split, Standardizer
from problems.config import build, field_names
from problems.methods import method as registered_method
from problems.methods.base import adam
from problems.methods.random_insertion import Config as RandomConfig
from problems.methods.topological import Config as TopologicalConfig
from problems.registry import problem_class
from problems.run import _meta, _predict, _write_json, is_done

TRANSFER_METHODS = ("scratch", "finetune", "head", "topological", "topological_head", "topological_multi", "random",
                    "lora")
INSERTION_METHODS = ("topological", "topological_head", "topological_multi", "random")
DEFAULTS = {
    "smoke": {"sizes": (10, 40), "epochs": 20, "insertions": 2, "rank": 2, "lr_factors": (0.3, 1.0),
              "source_blocks": 2, "score_estimation": "exact"},
    "paper": {"sizes": (10, 30, 100, 300, 1000), "epochs": 60, "insertions": 3, "rank": 4,
              "lr_factors": (0.1, 0.3, 1.0), "source_blocks": 3, "score_estimation": "exact"},
}


@dataclass(frozen=True, kw_only=True)
class TransferConfig(TopologicalConfig, RandomConfig):
    """The settings of a transfer run: those of the topological and random-insertion methods (network,
    Adam, plateau test, Q_l estimation, random block weights; ``epochs`` is the budget on the target),
    and ``sizes`` (the sweep's target sizes N), ``source_blocks`` and ``source_epochs`` (the source
    network), ``insertions`` (most inserted blocks), ``rank`` (LoRA), ``lr_factors`` (fine-tuning).
    Q_l is computed exactly (``score_estimation="exact"``): with at most a few hundred target samples
    it is cheap, and the estimate needs no certificate."""

    sizes: tuple[int, ...]
    source_blocks: int
    source_epochs: int
    insertions: int
    rank: int
    lr_factors: tuple[float, ...]


def transfer_settings(problem: Problem) -> TransferConfig:
    """The problem's preset settings that a transfer run has (width, lr, batch size, ...; its
    ``epochs`` become ``source_epochs``), then the transfer defaults of the preset name (``full``:
    paper's), then the problem's own ``transfer_presets`` entry; a mistyped or unknown transfer
    setting is a one-line ConfigError."""
    shared = {k: v for k, v in problem.settings.items() if k in field_names(TransferConfig)}
    own = getattr(problem, "transfer_presets", {}).get(problem.preset, {})
    defaults = DEFAULTS.get(problem.preset, DEFAULTS["smoke" if problem.preset == "smoke" else "paper"])
    return build(TransferConfig, {**shared, "source_epochs": shared["epochs"], **defaults, **own},
                 f"{problem.name} transfer preset '{problem.preset}'")


def _dataset_identity(path) -> Optional[dict]:
    if path is None:
        return None
    from pde_data.store import validate

    attrs = validate(str(path))
    return {"path": str(path), "created_utc": attrs["created_utc"], "n_samples": attrs["n_samples"],
            "base_seed": attrs["base_seed"], "config": attrs["config"]}


def transfer_config(problem_name, method, n_target, seed, preset, source, target, insertions=None) -> dict:
    if method not in TRANSFER_METHODS:
        raise UserError(f"unknown transfer method '{method}' (known: {', '.join(TRANSFER_METHODS)})")
    problem = problem_class(problem_name)(preset)
    if problem.needs_data and (source is None or target is None):
        raise UserError(f"transfer of '{problem_name}' needs --source-data FILE and --target-data FILE")
    if n_target < 4:
        raise UserError(f"--n-target {n_target}: at least 4 target samples are needed (training and validation)")
    return json.loads(json.dumps({"problem": problem_name, "method": method, "n_target": n_target, "seed": seed,
                                  "preset": preset, "insertions": insertions, "source": _dataset_identity(source),
                                  "target": _dataset_identity(target),
                                  "settings": dataclasses.asdict(transfer_settings(problem))}))


# -- data -------------------------------------------------------------------------------------------
def _shape(data: Data) -> dict:
    dataset = data.info.get("dataset")
    grid = None
    if dataset is not None and "geometry/parameter_points" in dataset.array_attrs:
        grid = [int(n) for n in dataset.array_attrs["geometry/parameter_points"].get("grid_shape", [])]
    return {"inputs (sensor count)": tuple(data.x_train.shape[1:]),
            "outputs (grid)": tuple(data.y_train.shape[1:]), "grid shape": grid}


def check_shapes(problem_name: str, source: Data, target: Data) -> None:
    """UserError (one line) naming what differs between the source and the target data."""
    a, b = _shape(source), _shape(target)
    diff = [f"{k}: source {a[k]}, target {b[k]}" for k in a if a[k] != b[k]]
    if diff:
        raise UserError(f"{problem_name}: the target data do not fit the source network ({'; '.join(diff)})")


def _rescale(t: torch.Tensor, old: Standardizer, new: Standardizer) -> torch.Tensor:
    return torch.as_tensor(new.forward(old.inverse(t.double().cpu().numpy())), dtype=t.dtype)


def _restandardized(split: Split, source: Data, target: Data, classification: bool) -> Split:
    """``split`` of the target data, standardized with the source statistics instead of its own."""
    inputs = _rescale(split.inputs, target.input_scaler, source.input_scaler)
    targets = split.targets if classification else _rescale(split.targets, target.target_scaler, source.target_scaler)
    return Split(inputs, targets, split.index, split.extras)


def target_data(source: Data, target: Data, n_target: int, seed: int, classification: bool) -> Data:
    """N target samples (training + validation, nested in N; validation first) and the target's test
    set, standardized with the source statistics (module docstring)."""
    pool = Split.concat(target.train, target.val)
    if n_target > len(pool):
        raise UserError(f"--n-target {n_target}: the target dataset has only {len(pool)} training and "
                        "validation samples")
    picked = pool.take(np.random.RandomState(seed).permutation(len(pool))[:n_target])
    picked = _restandardized(picked, source, target, classification)
    n_val = max(2, round(n_target / 5))
    return dataclasses.replace(target, train=picked.take(np.arange(n_val, n_target)), val=picked.take(np.arange(n_val)),
                               test=_restandardized(target.test, source, target, classification),
                               target_scaler=source.target_scaler, input_scaler=source.input_scaler)


@functools.lru_cache(maxsize=1)
def _cached_pair(problem_name: str, preset: str, source_path, target_path) -> tuple[Data, Data]:
    """:func:`load_pair`, kept for the next run of a sweep (the same pair every time)."""
    return load_pair(problem_class(problem_name)(preset), source_path, target_path)


def load_pair(problem: Problem, source_path, target_path) -> tuple[Data, Data]:
    """(source data, target data) of ``problem``; each loaded as the problem loads a dataset, then
    reduced to its role by ``problem.transfer_task`` (MNIST: the digits of each task)."""
    source = problem.transfer_task(problem.load(source_path), "source")
    target = problem.transfer_task(problem.load(target_path), "target")
    check_shapes(problem.name, source, target)
    return source, target


# -- the source network ---------------------------------------------------------------------------------
def _network(s: TransferConfig, data: Data) -> torch.nn.Module:
    """The source architecture (the compared methods' ResidualMLP of ``source_blocks`` blocks)."""
    return registered_method("baseline").network(s, data, s.source_blocks)


def _train_source(problem: Problem, source: Data, s: TransferConfig, seed: int, device: str):
    torch.manual_seed(seed)
    net = _network(s, source).to(device)
    return growth.grow(net, growth.FixedBaseline(), source.train.xy, source.val.xy if len(source.val) else None,
                       loss_fn=problem.loss_fn(), epochs_per_stage=s.source_epochs, max_stages=1,
                       batch_size=s.batch_size, optimizer=adam(s.lr, s.weight_decay), seed=seed,
                       device=device, progress=False).net


def source_network(problem: Problem, source: Data, config: dict, cache: Path, device: str):
    """The source network of ``config`` (problem, preset, seed, source dataset, settings): loaded from
    ``cache`` when it holds one made with the same configuration, else trained and cached
    (written to a temporary directory and renamed, so a killed run leaves no half-written cache)."""
    key = {k: config[k] for k in ("problem", "preset", "seed", "source")}
    key["settings"] = {k: config["settings"][k] for k in ("width", "source_blocks", "source_epochs", "lr",
                                                           "batch_size", "split", "dtype") if k in config["settings"]}
    if (cache / "network.pt").is_file() and is_done(cache, key):
        return growth.load(cache / "network.pt", map_location=device)
    t0 = time.perf_counter()
    net = _train_source(problem, source, transfer_settings(problem), config["seed"], device)
    tmp = cache.with_name(f"{cache.name}.partial-{id(net)}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    growth.save(net, tmp / "network.pt")
    _write_json(tmp / "config.json", key)
    metrics = problem.metrics(_predict(net.eval(), source.x_test), source)
    _write_json(tmp / "metrics.json", {**metrics, "wall_time_s": time.perf_counter() - t0,
                                       "n_parameters": growth.count_parameters(net)})
    if cache.exists() and not is_done(cache, key):
        shutil.rmtree(cache)  # made with other settings
    try:
        tmp.rename(cache)
    except OSError:  # another process of a sweep cached the same network first: keep theirs
        shutil.rmtree(tmp)
    return net


# -- the methods ----------------------------------------------------------------------------------------
def first_insertion(net: torch.nn.Module, strategy: Strategy, train: tuple[torch.Tensor, torch.Tensor],
                    loss_fn: Callable, seed: int = 0) -> Optional[dict]:
    """One growth step of ``strategy`` (its own ``grow``, on a stage-0 :class:`~growth.trainer.Context`
    of the training data) before training: a frozen base whose head is frozen too has nothing to train
    until a block is inserted. Returns the growth event with the training loss before and after (the
    fields the trainer logs), or None when the strategy proposes nothing (e.g. λ_max ≤ 0 everywhere)."""
    device = next(net.parameters()).device
    train = tuple(t.to(device) for t in train)
    ctx = Context(0, 0, train, None, loss_fn, len(train[0]), device, torch.Generator().manual_seed(seed))
    before = ctx.loss(net)
    event = strategy.grow(net, ctx)
    if event is None:
        return None
    after = ctx.loss(net)
    return {"event": "growth", "stage": None, "before_training": True, **event, "loss_before": before,
            "loss_after": after, "actual_change": after - before}


def _grow(problem, net, strategy, data, s, seed, device, callback, *, lr=None, stages=1, split=1, patience=None):
    """``stages`` stages of ``epochs // split`` epochs each (at most the budget when stages ≤ split)."""
    n_train = len(data.x_train)
    batch = min(s.batch_size or n_train, max(1, n_train // 4))
    return growth.grow(net, strategy, data.train.xy, data.val.xy, loss_fn=problem.loss_fn(),
                       epochs_per_stage=s.epochs // split, max_stages=stages,
                       patience=s.patience if patience is None else patience,
                       min_rel_improvement=s.min_rel_improvement, batch_size=batch,
                       optimizer=adam(s.lr if lr is None else lr, s.weight_decay), seed=seed,
                       device=device, progress=False, callback=callback)


def _adapted(source_net, data: Data, new_classes: bool, seed: int, train_head: bool):
    """A frozen copy of the source network; the head trainable if asked, re-initialized (and trained)
    for new classes."""
    net = copy.deepcopy(source_net)
    generator = torch.Generator().manual_seed(seed)
    return freeze_base(net, train_head=train_head, new_head_outputs=data.n_outputs if new_classes else None,
                       generator=generator)


def _insertion(problem, net, strategy, data, s, seed, device, callback, count: Optional[int]):
    """Insertion into the frozen base: stage 0 trains the head where it is trainable, every later
    stage one more inserted block (with the head); with a frozen head the first block goes in before
    training (growth.transfer.first_insertion). ``count``: exactly that many blocks, else at most
    ``insertions`` with plateau stopping. Stages last ``epochs // (insertions + head)`` epochs."""
    head = any(p.requires_grad for p in net.parameters())
    split = s.insertions + int(head)
    n_blocks = s.insertions if count is None else count
    if not head and n_blocks > 0:
        first = first_insertion(net, strategy, data.train.xy, problem.loss_fn(), seed=seed)
        if first is None:
            return growth.GrowResult(net, [], "no proposal promises a decrease")
        callback(first, net)
    stages = n_blocks + int(head)
    if stages == 0:
        return growth.GrowResult(net, [], "no insertion")
    result = _grow(problem, net, FrozenBase(strategy), data, s, seed, device, callback, stages=stages, split=split,
                   patience=None if count is None else math.inf)
    history = ([first] if not head and n_blocks > 0 else []) + result.history
    return growth.GrowResult(result.net, history, result.stop_reason)


def _finetune(problem, source_net, data, s, seed, device, callback, new_classes):
    """Every parameter trained; the learning rate with the lowest final validation loss."""
    best = None
    for factor in s.lr_factors:
        records = []
        net = _adapted(source_net, data, new_classes, seed, train_head=True)
        growth.unfreeze(net)
        torch.manual_seed(seed)
        result = _grow(problem, net, growth.FixedBaseline(), data, s, seed, device,
                       lambda record, _net: records.append(record), lr=factor * s.lr)
        if best is None or result.val_loss < best[0].val_loss:
            best = (result, records, factor * s.lr)
    for record in best[1]:
        callback(record, best[0].net)
    return best[0], {"lr": best[2]}


def train_transfer(problem, source_net, data, method, s, seed, device, callback, new_classes, insertions=None):
    """(growth result, extra metrics) of ``method`` on the target ``data`` (module docstring)."""
    torch.manual_seed(seed)
    if method == "scratch":
        net = _network(s, data)
        return _grow(problem, net.to(device), growth.FixedBaseline(), data, s, seed, device, callback), {}
    if method == "finetune":
        return _finetune(problem, source_net, data, s, seed, device, callback, new_classes)
    net = _adapted(source_net, data, new_classes, seed, train_head=method in ("head", "topological_head"))
    if method == "head":
        return _grow(problem, net, FrozenBase(growth.FixedBaseline()), data, s, seed, device, callback), {}
    if method == "lora":
        net = add_low_rank_adapters(net, s.rank, generator=torch.Generator().manual_seed(seed))
        return _grow(problem, net, FrozenBase(growth.FixedBaseline()), data, s, seed, device, callback), {}
    if method in ("topological", "topological_head"):
        strategy = registered_method("topological").strategy(problem, data, s, seed)
        return _insertion(problem, net, strategy, data, s, seed, device, callback, None), {}
    if method == "topological_multi":
        strategy = growth.TopologicalStrategy(multi_neuron=True, batch_size=s.score_batch_size,
                                              subsample=s.score_subsample, subsample_seed=seed,
                                              estimation=s.score_estimation)
        return _insertion(problem, net, strategy, data, s, seed, device, callback, None), {}
    strategy = registered_method("random").strategy(problem, data, s, seed)
    return _insertion(problem, net, strategy, data, s, seed, device, callback, insertions), {}


# -- the command ----------------------------------------------------------------------------------------
def _prepare_out(final: Path, config: dict, overwrite: bool) -> Optional[dict]:
    """The finished metrics when ``final`` holds this run already, else None after the checks of ``run``."""
    if is_done(final, config):
        return json.loads((final / "metrics.json").read_text())
    if final.exists() and not final.is_dir():
        raise UserError(f"{final} exists and is not a directory")
    if final.exists() and any(final.iterdir()) and not overwrite:
        raise UserError(f"{final} exists and is not empty (use --overwrite)")
    return None


def user_network(path, method: str, device: str):
    """A network saved with :func:`growth.save` (e.g. a ``run``'s ``network.pt``), as the source
    network; refused in one line if it cannot be read or the insertion methods cannot grow it."""
    try:
        net = growth.load(path, map_location=device)
    except (OSError, ValueError, RuntimeError) as error:
        raise UserError(f"--source-network {path}: {str(error).splitlines()[0]}") from None
    if method in INSERTION_METHODS:
        try:
            check_td_activation(net)
        except (TypeError, ValueError) as error:
            raise UserError(f"--source-network {path}: {error}") from None
    return net


def run_transfer(problem_name: str, method: str, n_target: int, seed: int, preset: str, source_path, target_path,
                 out_dir, cache=None, insertions: Optional[int] = None, device: str = "cpu",
                 overwrite: bool = False, argv=None, source_network_path=None) -> dict:
    """One transfer run into ``out_dir`` (``OUT.partial`` renamed when finished); returns its metrics.
    A finished run of the same configuration is returned as it is (resume of a sweep).
    ``source_network_path``: adapt this saved network (trained on ``source_path`` data, e.g. by
    ``python -m problems run``) instead of training and caching one."""
    config = transfer_config(problem_name, method, n_target, seed, preset, source_path, target_path, insertions)
    if source_network_path is not None:
        config["source_network"] = {"path": str(source_network_path),
                                    "sha256": hashlib.sha256(Path(source_network_path).read_bytes()).hexdigest()}
    final = Path(out_dir)
    done = _prepare_out(final, config, overwrite)
    if done is not None:
        return done
    problem = problem_class(problem_name)(preset)
    s = transfer_settings(problem)
    if s.threads:
        torch.set_num_threads(s.threads)
    source, target = _cached_pair(problem_name, preset, source_path and str(source_path),
                                  target_path and str(target_path))
    data = target_data(source, target, n_target, seed, problem.kind == "classification").to(device)
    cache = Path(cache) if cache is not None else final.parent / "source" / f"seed_{seed}"
    if source_network_path is not None:
        source_net = user_network(source_network_path, method, device)
        try:
            with torch.no_grad():
                source_net(data.x_val[:1].to(next(source_net.parameters()).dtype))
        except RuntimeError as error:
            raise UserError(f"--source-network {source_network_path} does not take the {problem_name} "
                            f"inputs ({str(error).splitlines()[0]})") from None
    else:
        source_net = source_network(problem, source.to(device), config, cache, device)
    out = final.with_name(final.name + ".partial")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _write_json(out / "config.json", config)
    _write_json(out / "meta.json", _meta(seed, device, sys.argv if argv is None else argv))
    new_classes = source.info.get("classes") != data.info.get("classes")
    t0 = time.perf_counter()
    with (out / "log.jsonl").open("w") as log:
        result, extra = train_transfer(problem, source_net, data, method, s, seed, device,
                                       lambda record, _net: log.write(json.dumps(record) + "\n"), new_classes,
                                       insertions)
    model = result.net.eval()
    growth.save(model, out / "network.pt")
    metrics = {**problem.metrics(_predict(model, data.x_test), data), **extra,
               **_pretrained_metrics(problem, source_net, data, new_classes),
               "val_loss": growth.evaluate_loss(model, problem.loss_fn(), *data.val.xy),
               "n_trainable": growth.count_parameters(model, trainable_only=True),
               "n_parameters": growth.count_parameters(model), "n_train": len(data.x_train),
               "n_val": len(data.x_val), "n_inserted": _n_inserted(result.history),
               "n_epochs": sum(1 for r in result.history if r["event"] == "epoch"),
               "wall_time_s": time.perf_counter() - t0, "stop_reason": result.stop_reason}
    _write_json(out / "metrics.json", metrics)
    shutil.rmtree(final, ignore_errors=True)
    out.rename(final)
    return metrics


def _n_inserted(history: list) -> int:
    return sum(1 for r in history if r["event"] == "growth")


def _pretrained_metrics(problem, source_net, data, new_classes) -> dict:
    """The source network's test metrics on the target unchanged (how different the tasks are) and
    those of :func:`frozen_head_floor` (``frozen_head_floor_*``, with ``frozen_head_range_fraction``);
    not defined when the classes change."""
    if new_classes:
        return {}
    prediction = _predict(source_net.eval(), data.x_test)
    pretrained = {f"pretrained_{k}": v for k, v in problem.metrics(prediction, data).items()}
    if not isinstance(getattr(source_net, "head", None), torch.nn.Linear):
        return pretrained
    floor, fraction = frozen_head_floor(source_net.head.weight, prediction, data.y_test, data.target_scaler)
    return {**pretrained,
            **{f"frozen_head_floor_{k}": v for k, v in problem.metrics(floor, data).items()},
            "frozen_head_range_fraction": fraction}


def frozen_head_floor(head_weight: torch.Tensor, prediction: torch.Tensor, targets: torch.Tensor,
                      scaler: Standardizer) -> tuple[torch.Tensor, float]:
    """The best outputs that any adaptation keeping the head ``y = W h + b`` fixed can give, and the
    share of the residual it can remove.

    Whatever is inserted before the head (blocks at any location, any training), the output moves
    by ``W Δh``: within the column space of ``W`` (rank ≤ width). Per sample, in physical units
    (targets ``t = m + s ⊙ y`` with the standardizer's ``s``), the closest reachable output to the
    truth is ``ŷ + W c`` with ``c = argmin ‖s ⊙ (y − ŷ − W c)‖``; the errors of these outputs are a
    lower bound for every frozen-head method (``topological``, ``topological_multi``, ``random``;
    not ``lora``, whose adapters change the head), reached only by a perfect
    per-sample ``Δh``. Returns (those outputs in standardized units, ``Σ‖s ⊙ W c‖² / Σ‖s ⊙ (y − ŷ)‖²``
    over the samples: the fraction of the squared residual inside the head's range).
    The gradient of the loss at the last residual state is ``Wᵀ ∂L/∂y``, so it, and the topological
    derivative, see only this part of the residual."""
    w = head_weight.detach().double().cpu()
    s = torch.as_tensor(np.broadcast_to(np.asarray(scaler.std, dtype=float), (w.shape[0],)).copy())
    residual = s * (targets.double().cpu() - prediction.double().cpu())
    a = s[:, None] * w
    coefficients = torch.linalg.lstsq(a, residual.T, driver="gelsd").solution
    reached = (a @ coefficients).T
    floor = prediction.double().cpu() + (w @ coefficients).T
    return floor.to(prediction.dtype), float((reached ** 2).sum() / (residual ** 2).sum())


def transfer_sweep(problem_name: str, preset: str, seeds, sizes, methods, source, target, out_root,
                   device: str = "cpu") -> int:
    """Every seed × N × method into ``OUT_ROOT/PROBLEM/METHOD/n_N/seed_S`` (source networks in
    ``OUT_ROOT/PROBLEM/source``), resumable like ``sweep``; under ``mpirun -n K`` each process takes
    every K-th (seed, N) group, whose runs go in the order of :data:`TRANSFER_METHODS` so that random
    insertion finds the topological run's count of inserted blocks. Returns 1 if any run failed."""
    for method in methods:
        transfer_config(problem_name, method, max(4, min(sizes)), seeds[0], preset, source, target)  # checks
    root = Path(out_root) / problem_name
    rank, size = mpi_rank.rank_size()
    groups = [(seed, n) for n in sorted(sizes) for seed in seeds]  # every seed of a size before the next size
    ordered = [m for m in TRANSFER_METHODS if m in methods]
    failed = 0
    for i, (seed, n) in enumerate(groups):
        if i % size != rank:
            continue
        for method in ordered:
            out = root / method / f"n_{n}" / f"seed_{seed}"
            td = root / "topological" / f"n_{n}" / f"seed_{seed}" / "metrics.json"
            count = json.loads(td.read_text())["n_inserted"] if method == "random" and td.is_file() else None
            label = f"{problem_name} {method} n={n} seed {seed}"
            try:
                t0 = time.perf_counter()
                m = run_transfer(problem_name, method, n, seed, preset, source, target, out,
                                 cache=root / "source" / f"seed_{seed}", insertions=count, device=device,
                                 overwrite=True)
                shown = " ".join(f"{k}={v:.4g}" for k, v in m.items() if k.startswith("test_"))
                print(f"{label}: {time.perf_counter() - t0:.1f} s {shown}", flush=True)
            except UserError as error:
                failed += 1
                print(f"{label}: error: {error}", file=sys.stderr, flush=True)
    return 1 if failed else 0
