"""What every problem binding provides, and the helpers they share.

A problem (one module under ``problems/``, registered in :mod:`problems.registry`) is a subclass of
:class:`Problem`. It turns its data (an HDF5 dataset of :mod:`pde_data.store`, or a prototype's own
file) into a :class:`Data` of standardized tensors split into training, validation and test sets,
and states per preset the network sizes, the total training budget and every method's
hyper-parameters. Training and model selection only ever see the training and validation sets; the
test set is used once, for the metrics.

Conventions shared by all problems:

* the split is a permutation of the usable samples drawn from ``numpy.random.RandomState(split_seed)``
  (``split_seed`` is a constant of the problem, so every method and every training seed sees the same
  test set and mean ± std over seeds measures training variability only);
* inputs are standardized feature by feature with the training set's mean and population standard
  deviation; targets as the problem says (:class:`Standardizer`);
* ``test_mse`` is reported in the target's physical units, ``test_rel_l2`` is the mean over test
  samples of ‖f̂ − f‖ / ‖f‖ in the norm the problem names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from common.errors import UserError

__all__ = ["Data", "Problem", "Standardizer", "split_counts", "split_indices", "read_dataset", "dataset_split"]


@dataclass
class Standardizer:
    """x ↦ (x − mean) / std with the statistics of the training rows (``std`` 0 is replaced by 1)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, rows: np.ndarray, per_feature: bool = True) -> "Standardizer":
        """Per column (``per_feature``) or one scalar mean and std over all entries."""
        mean = rows.mean(0) if per_feature else np.array(rows.mean())
        std = rows.std(0) if per_feature else np.array(rows.std())
        return cls(mean, np.where(std > 0, std, 1.0))

    @classmethod
    def identity(cls) -> "Standardizer":
        return cls(np.array(0.0), np.array(1.0))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def inverse(self, y):
        """Back to physical units (numpy array or tensor)."""
        if isinstance(y, torch.Tensor):
            return y * torch.as_tensor(self.std, dtype=y.dtype, device=y.device) + torch.as_tensor(
                self.mean, dtype=y.dtype, device=y.device)
        return y * self.std + self.mean


@dataclass
class Data:
    """Standardized tensors of one problem, split; ``target_scaler`` maps targets back to physical
    units; ``info`` holds what metrics, regularizers and figures need (geometry, operators, ...)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    target_scaler: Standardizer
    info: dict = field(default_factory=dict)

    @property
    def train(self):
        return self.x_train, self.y_train

    @property
    def val(self):
        return self.x_val, self.y_val

    def to(self, device) -> "Data":
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def split_counts(n_available: int, wanted: tuple) -> tuple:
    """The split sizes: ``wanted`` when that many samples exist, else the same proportions of
    ``n_available`` (rounded down, at least one sample for each nonzero size), for tiny test files."""
    wanted = tuple(wanted)
    if sum(wanted) <= n_available:
        return wanted
    scale = n_available / sum(wanted)
    counts = tuple(max(1, int(c * scale)) if c else 0 for c in wanted)
    if sum(counts) > n_available:
        raise UserError(f"{n_available} samples are too few for a training/validation/test split")
    return counts


def split_indices(n_available: int, counts: tuple[int, int, int], seed: int):
    """(train, val, test) index arrays: consecutive pieces of ``RandomState(seed).permutation(n)``."""
    perm = np.random.RandomState(seed).permutation(n_available)
    a, b = counts[0], counts[0] + counts[1]
    return perm[:a], perm[a:b], perm[b:b + counts[2]]


def read_dataset(path, problem: str):
    """The dataset at ``path`` via :func:`pde_data.store.read`, refused (one line) unless it is a
    dataset of ``problem``."""
    if path is None:
        raise UserError(f"problem '{problem}' needs --data FILE (make it with `python -m pde_data generate {problem} ...`)")
    from pde_data.store import read

    dataset = read(str(path))
    if dataset.attrs["problem"] != problem:
        raise UserError(f"{path} is a '{dataset.attrs['problem']}' dataset, not '{problem}'")
    return dataset


class Problem:
    """A problem binding. Subclasses set the class attributes and implement :meth:`load`.

    ``kind``: ``"field"`` (PDE inverse problem, a parameter field), ``"regression"`` or
    ``"classification"``; ``needs_data``: whether ``--data FILE`` is required; ``presets``:
    ``{preset: settings}`` where settings holds ``width``, ``n_blocks`` (initial depth of the growing
    methods), ``final_blocks`` (their depth cap and the fixed baseline's depth), ``epochs`` (the total
    budget of every method), ``lr``, ``batch_size`` (None: full batch), ``patience``,
    ``min_rel_improvement``, ``split`` (n_train, n_val, n_test), ``dtype``, ``threads`` (torch CPU
    threads; 1 for the tiny smoke networks, whose speed other threads only slow down) and ``methods``
    (per-method overrides); ``split_seed``: see the module docstring.
    """

    name = "problem"
    kind = "field"
    needs_data = True
    split_seed = 0
    presets: dict = {}

    def __init__(self, preset: str):
        if preset not in self.presets:
            raise UserError(f"unknown preset '{preset}' for {self.name} (known: {', '.join(self.presets)})")
        self.preset = preset
        self.settings = self.presets[preset]

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.settings.get("dtype", "float64"))

    def load(self, path) -> Data:
        raise NotImplementedError

    def loss_fn(self) -> Callable:
        """Training loss on standardized targets (mean over the batch)."""
        return nn.CrossEntropyLoss() if self.kind == "classification" else nn.MSELoss()

    def physics(self, data: Data, name: str):
        """A callable ``fn(predictions, batch) -> scalar`` for growth.regularizers.PhysicsPenalty, or
        None; ``name`` selects one where the problem has several."""
        return None

    def metrics(self, prediction: torch.Tensor, data: Data) -> dict:
        """Test metrics from the network's test outputs (standardized units)."""
        if self.kind == "classification":
            return {"test_accuracy": float((prediction.argmax(1) == data.y_test).double().mean())}
        pred = data.target_scaler.inverse(prediction.detach().double().cpu().numpy())
        true = data.target_scaler.inverse(data.y_test.double().cpu().numpy())
        out = {"test_mse": float(((pred - true) ** 2).mean())}
        if self.kind == "field":
            out.update(self.field_metrics(pred, true, data))
        return out

    def field_metrics(self, pred: np.ndarray, true: np.ndarray, data: Data) -> dict:
        """Metrics of the parameter field from predicted and true targets in physical units (one row
        per test sample): ``test_rel_l2``, the mean of :meth:`relative_errors`; problems add theirs."""
        return {"test_rel_l2": float(np.mean(self.relative_errors(pred, true, data)))}

    def fields(self, targets: np.ndarray, data: Data) -> np.ndarray:
        """The parameter field (one row per sample) of targets in physical units (default: themselves)."""
        return targets

    def relative_errors(self, pred: np.ndarray, true: np.ndarray, data: Data) -> np.ndarray:
        """‖f̂ − f‖ / ‖f‖ per sample, in the Euclidean norm of the field's values (on a uniform grid:
        the L2 norm up to the cell volume); problems with a mass matrix override it."""
        fp, ft = self.fields(pred, data), self.fields(true, data)
        return np.linalg.norm(fp - ft, axis=1) / np.linalg.norm(ft, axis=1)

    def draw_field(self, ax, values: np.ndarray, data: Data, **kw):
        """Draw one field (physical units) on a matplotlib axes; returns the mappable."""
        raise NotImplementedError(f"{self.name} has no field to draw")


def dataset_split(problem: Problem, dataset, targets: np.ndarray,
                  fit_targets: Callable[[np.ndarray], Standardizer] = lambda rows: Standardizer.identity()) -> Data:
    """A :class:`Data` of a PDE dataset: inputs = /observations (noisy), standardized per sensor;
    ``targets`` one row per done sample in physical units, standardized by ``fit_targets(training
    rows)``. ``info`` gets the rows of each split, the input scaler and the dataset itself."""
    x = dataset.rows("observations")
    counts = split_counts(len(x), tuple(problem.settings["split"]))
    train, val, test = split_indices(len(x), counts, problem.split_seed)
    x_scaler, y_scaler = Standardizer.fit(x[train]), fit_targets(targets[train])

    def t(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=problem.dtype)

    return Data(t(x_scaler.forward(x[train])), t(y_scaler.forward(targets[train])),
                t(x_scaler.forward(x[val])), t(y_scaler.forward(targets[val])),
                t(x_scaler.forward(x[test])), t(y_scaler.forward(targets[test])), y_scaler,
                info={"index": {"train": train, "val": val, "test": test}, "input_scaler": x_scaler,
                      "dataset": dataset})
