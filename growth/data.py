"""Training data as the growth engine reads it: tensors, a ``Dataset`` or a ``DataLoader``.

Every function that takes data (the trainer, :func:`growth.topological_derivative`, SensLI, the loss
evaluation) accepts ``(inputs, targets)`` tensors, or a ``torch.utils.data.Dataset`` / ``DataLoader``
whose items are ``(input, target)`` pairs, so that images and grids keep their shape and data
larger than memory is read batch by batch. Sums over samples (Q, the SensLI gradients, J as the
mean loss) are accumulated over mini-batches with weight |batch|/S, S the number of samples.

A ``DataLoader`` is iterated as it is (its batch size, order and workers); a ``Dataset`` is read in
order in batches of the caller's ``batch_size`` (the trainer shuffles a training Dataset with its
seeded generator, so that a run on one is deterministic and resumable). Subsets (``subsample``, the adaptive estimator) are
``Subset``\\ s of the dataset read by a loader with the same batch size and collate function.
"""
from __future__ import annotations

from typing import Iterator, Optional, Union

import torch
from torch.utils.data import DataLoader, Dataset, Subset

__all__ = ["Data", "as_data", "n_samples", "batches", "take"]

Data = Union[tuple, Dataset, DataLoader]


def as_data(inputs, targets=None) -> Data:
    """``(inputs, targets)`` tensors, or ``inputs`` itself when it is a pair, a Dataset or a DataLoader."""
    if targets is not None:
        return inputs, targets
    if isinstance(inputs, (DataLoader, Dataset)):
        return inputs
    if isinstance(inputs, (tuple, list)) and len(inputs) == 2:
        return tuple(inputs)
    raise TypeError(f"data must be (inputs, targets) tensors, a Dataset or a DataLoader; got {type(inputs).__name__}"
                    + ("" if targets is None else " with targets"))


def n_samples(data: Data) -> int:
    """S, the number of samples."""
    if isinstance(data, DataLoader):
        return len(data.dataset)
    if isinstance(data, Dataset):
        return len(data)
    return data[0].shape[0]


def batches(data: Data, batch_size: Optional[int] = None, device=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(inputs, targets)`` mini-batches in order (a DataLoader: its own batches). Batches read from a
    Dataset/DataLoader are moved to ``device`` (None: left where they are); tensors are sliced where
    they are (the caller put them on the device)."""
    if isinstance(data, (DataLoader, Dataset)):
        loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size or len(data))
        for xb, yb in loader:
            yield (xb, yb) if device is None else (xb.to(device), yb.to(device))
        return
    inputs, targets = data
    n = inputs.shape[0]
    bs = n if batch_size is None else batch_size
    for i in range(0, n, bs):
        yield inputs[i:i + bs], targets[i:i + bs]


def take(data: Data, rows: torch.Tensor) -> Data:
    """The samples ``rows`` (an index tensor) of ``data``, of the same kind."""
    if isinstance(data, DataLoader):
        return DataLoader(Subset(data.dataset, rows.tolist()), batch_size=data.batch_size, collate_fn=data.collate_fn)
    if isinstance(data, Dataset):
        return Subset(data, rows.tolist())
    inputs, targets = data
    rows = rows.to(inputs.device)
    return inputs[rows], targets[rows]
