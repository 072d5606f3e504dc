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

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from common.errors import UserError

__all__ = ["Data", "Split", "Problem", "Standardizer", "split_counts", "split_indices", "read_dataset", "dataset_split",
           "require_finite"]


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
class Split:
    """One part of a split, one row per sample in the same order in every array: standardized ``inputs``
    and ``targets`` (tensors), ``index`` (int64: each row's sample number in the problem's own numbering,
    e.g. the dataset row) and named per-sample ``extras`` (numpy arrays, e.g. MNIST's ``labels``, heat's
    ``states``). A batch's rows of a split are positions into these arrays."""

    inputs: torch.Tensor
    targets: torch.Tensor
    index: np.ndarray
    extras: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def xy(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), what :func:`growth.grow` trains on."""
        return self.inputs, self.targets

    def take(self, rows) -> "Split":
        """The rows ``rows`` (positions) of every per-sample array."""
        rows = np.asarray(rows, dtype=np.int64)
        picked = torch.as_tensor(rows, device=self.inputs.device)
        return Split(self.inputs[picked], self.targets[picked], self.index[rows],
                     {k: v[rows] for k, v in self.extras.items()})

    @staticmethod
    def concat(first: "Split", second: "Split") -> "Split":
        """``first``'s rows followed by ``second``'s, in every per-sample array."""
        return Split(torch.cat([first.inputs, second.inputs]), torch.cat([first.targets, second.targets]),
                     np.concatenate([first.index, second.index]),
                     {k: np.concatenate([v, second.extras[k]]) for k, v in first.extras.items()})

    def to(self, device) -> "Split":
        return Split(self.inputs.to(device), self.targets.to(device), self.index, self.extras)

    def shaped(self, inputs: tuple, targets: Optional[tuple] = None) -> "Split":
        """The same rows with every sample's input viewed as the shape ``inputs`` (e.g. (C, H, W)), and
        its target as ``targets`` (None: as it is)."""
        y = self.targets if targets is None else self.targets.reshape(len(self.targets), *targets)
        return Split(self.inputs.reshape(len(self.inputs), *inputs), y, self.index, self.extras)


@dataclass
class Data:
    """The training, validation and test :class:`Split` of one problem. ``target_scaler`` maps targets
    back to physical units, ``input_scaler`` standardized inputs back to observations; ``n_classes`` is
    set for classification; ``info`` holds the problem's own constants (geometry, operators, the dataset)
    that its metrics, physics terms and drawings read."""

    train: Split
    val: Split
    test: Split
    target_scaler: Standardizer
    input_scaler: Standardizer = field(default_factory=lambda: Standardizer.identity())
    n_classes: Optional[int] = None
    info: dict = field(default_factory=dict)

    x_train = property(lambda self: self.train.inputs)
    y_train = property(lambda self: self.train.targets)
    x_val = property(lambda self: self.val.inputs)
    y_val = property(lambda self: self.val.targets)
    x_test = property(lambda self: self.test.inputs)
    y_test = property(lambda self: self.test.targets)

    @property
    def n_outputs(self) -> Optional[int]:
        """Network outputs: the classes, or the target's columns (None for one unnamed output)."""
        if self.n_classes is not None:
            return self.n_classes
        return self.y_train.shape[1] if self.y_train.ndim == 2 else None

    def to(self, device) -> "Data":
        return dataclasses.replace(self, train=self.train.to(device), val=self.val.to(device),
                                   test=self.test.to(device))

    def shaped(self, inputs: tuple, targets: Optional[tuple] = None) -> "Data":
        """Every split :meth:`Split.shaped` (grids and images for convolutional networks)."""
        return dataclasses.replace(self, train=self.train.shaped(inputs, targets), val=self.val.shaped(inputs, targets),
                                   test=self.test.shaped(inputs, targets))

    def pooled(self) -> "Data":
        """Training and validation rows together as the training split, no validation rows."""
        both = Split.concat(self.train, self.val)
        return dataclasses.replace(self, train=both, val=both.take([]))

    def with_validation(self, rows) -> "Data":
        """The training split's ``rows`` (positions) as validation split, the others (in order) as training."""
        rest = np.setdiff1d(np.arange(len(self.train)), rows)
        return dataclasses.replace(self, train=self.train.take(rest), val=self.train.take(rows))


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


def require_finite(rows: np.ndarray, what: str) -> None:
    """UserError (one line, naming ``what`` and the count) when ``rows`` holds NaN or inf."""
    bad = int(np.size(rows) - np.count_nonzero(np.isfinite(rows)))
    if bad:
        raise UserError(f"{what} holds {bad} non-finite values in the {len(rows)} rows a run uses "
                        "(fix or regenerate the dataset)")


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
    (per-method overrides); every key must be a setting of some method and every override one of that
    method (:func:`problems.methods.config_for` builds the typed settings and refuses typos);
    ``split_seed``: see the module docstring. The presentation attributes below are what
    :mod:`problems.figures` shows for the problem.
    """

    name = "problem"
    kind = "field"
    needs_data = True
    dataset = ""  # the pde_data problem whose dataset it reads (default: its own name)
    split_seed = 0
    presets: dict = {}
    # presentation (problems.figures draws from these alone):
    metric = "test_rel_l2"  # the main metric of the figures and tables
    published: dict = {}  # {published metric name: {method: value}} as the sources state them
    compared: dict = {}  # {metric: published metric name} where a metric is compared with another name
    notes = ""  # what summary.md says under the problem's heading: the published values and how comparable
    figures: tuple = ()  # extra figures: "fields" (field per stage), "td_scores", "error_maps"
    field_label = ""  # colour bar of a drawn field, with units
    error_label = ""  # colour bar of a drawn |prediction − truth| field, with units
    domain = ""  # where a drawn field lives, for figure titles

    def __init__(self, preset: str):
        if preset not in self.presets:
            raise UserError(f"unknown preset '{preset}' for {self.name} (known: {', '.join(self.presets)})")
        self.preset = preset
        self.settings = self.presets[preset]

    @classmethod
    def data_file(cls, data_dir) -> Path:
        """Its dataset in ``data_dir``: ``DATASET.h5`` (``dataset``, else the problem's name)."""
        return Path(data_dir) / f"{cls.dataset or cls.name}.h5"

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

    def transfer_task(self, data: Data, role: str) -> Data:
        """The data of one side (``role``: "source" or "target") of a transfer pair
        (:mod:`problems.transfer`); by default the loaded dataset itself, the two sides being two
        datasets. ``info["classes"]`` names the classes of a classification task."""
        return data

    @classmethod
    def reference_curves(cls, root) -> dict:
        """{metric: {label: [value after growth stage 0, 1, ...]}}: curves drawn (dashed) in the per-stage
        figure beside the runs' own, e.g. a published per-layer curve; ``root`` is the runs root, for
        curves of runs kept apart from the problem's main ones (default: none)."""
        return {}

    @classmethod
    def report(cls, methods: dict, root) -> str:
        """Markdown that ``summary.md`` shows after the problem's table ({method: [run]} as
        :func:`problems.figures.read_runs` gives them; ``root``: the runs root), e.g. a comparison with
        published values (default: nothing)."""
        return ""

    def draw_field(self, ax, values: np.ndarray, data: Data, **kw):
        """Draw one field (physical units) on a matplotlib axes; returns the mappable."""
        raise NotImplementedError(f"{self.name} has no field to draw")


def dataset_split(problem: Problem, dataset, targets: np.ndarray,
                  fit_targets: Callable[[np.ndarray], Standardizer] = lambda rows: Standardizer.identity(),
                  extras: Optional[dict] = None, indices: Optional[tuple] = None) -> Data:
    """A :class:`Data` of a PDE dataset: inputs = /observations (noisy), standardized per sensor;
    ``targets`` one row per done sample in physical units, standardized by ``fit_targets(training
    rows)``; ``extras``: named per-sample arrays (one row per done sample) split with them; ``indices``:
    (train, val, test) rows, else the random split of :func:`split_indices`; inputs as measured where the
    preset sets ``standardize_inputs`` False. The
    splits' ``index`` are the dataset's rows of done samples; ``info["dataset"]`` is the dataset."""
    x = dataset.rows("observations")
    rows = indices
    if rows is None:
        rows = split_indices(len(x), split_counts(len(x), tuple(problem.settings["split"])), problem.split_seed)
    used = np.concatenate(rows)
    require_finite(x[used], f"{dataset.arrays.source}: /observations")
    require_finite(targets[used], f"{dataset.arrays.source}: the targets (from /parameters or /latent)")
    standardize = problem.settings.get("standardize_inputs", True)
    x_scaler = Standardizer.fit(x[rows[0]]) if standardize else Standardizer.identity()
    y_scaler = fit_targets(targets[rows[0]])

    def part(r: np.ndarray) -> Split:
        return Split(torch.as_tensor(np.ascontiguousarray(x_scaler.forward(x[r])), dtype=problem.dtype),
                     torch.as_tensor(np.ascontiguousarray(y_scaler.forward(targets[r])), dtype=problem.dtype),
                     r, {k: v[r] for k, v in (extras or {}).items()})

    return Data(*(part(r) for r in rows), y_scaler, x_scaler, info={"dataset": dataset})
