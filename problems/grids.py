"""MNIST and Navier–Stokes on image- and grid-shaped inputs, for a residual CNN and a vision transformer
(issue 13, :mod:`problems.networks`): the same data, splits, standardization and metrics as
:mod:`problems.mnist` and :mod:`problems.navier_stokes`, with every sample kept as a (C, H, W) array.

* ``mnist_cnn``: the 28×28 image (one channel) -> 10 logits, :class:`growth.ResidualCNN` with a
  pooled linear head;
* ``mnist_vit``: the same images, :class:`growth.VisionTransformer` on 7×7 patches (16 tokens and a
  class token), grown by token-wise blocks between its transformer layers;
* ``navier_stokes_cnn``: ω(·, T) on the grid_n × grid_n grid -> ω0 on the same grid (one channel each,
  row i·n + j of the dataset is the point (i/n, j/n), so the C-order reshape puts x along the first
  axis), a field-to-field ResidualCNN with a k×k conv head; read from the ``navier_stokes`` dataset.
  Zero 'same' padding (the torus is not wrapped: the network learns the boundary).

Only methods defined on the growable protocol run on these networks: the topological derivative,
SensLI, random insertion, Net2DeeperNet, the fixed baseline (the final architecture trained from
scratch) and NAS; layerwise training, SRL and Forward Thinking need a plain MLP stack.

Settings. The sources give none for these networks. The paper presets were chosen on the validation
loss alone (never the test set), among a few learning rates and channel counts at the budget that fits
the paper pipeline on 2 CPU cores; the test set is used once, for the metrics. Both are cut: MNIST
trains on 3,000 of the 55,000 training images (the CNN on 2×2-pooled 14×14 images), Navier–Stokes on
1,000 samples, for 6 epochs (each problem's ``notes`` say so in summary.md). One torch thread per run:
these small convolutions only slow down with more (measured 5× slower with 2 threads on the shared
2-core machine). Q_l of the topological derivative is estimated from a fixed random subset of
``score_subsample`` training samples (unbiased); the conv blocks' Q per output channel costs
O(H·W·C·(Ck²)²) per sample.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from common.errors import UserError
from problems.base import Data, Split
from problems.mnist import MnistProblem
from problems.navier_stokes import NavierStokesProblem

# shared by every preset below; "threads": 1 (see the module docstring), None (torch's default) at full scale
_COMMON = {"threads": 1, "n_blocks": 1, "patience": 2, "min_rel_improvement": 0.0, "dtype": "float32"}
_CNN = {"kind": "cnn", "kernel_size": 3}


class MnistCnnProblem(MnistProblem):
    name = "mnist_cnn"
    published: dict = {}
    notes = ("No published numbers for a CNN. Paper preset cut to run on 2 CPU cores: 3,000 of the 55,000 "
             "training images (1,000 validation, the 10,000 official test images), 2×2-pooled to 14×14, 8 channels, "
             "1 to 3 residual blocks, 6 epochs in all; learning rate 1e-2 chosen on the validation loss of the "
             "baseline (seed 0) against 3e-3 (1e-3 learned too slowly in a first trial on 28×28 images).")
    presets = {
        "smoke": {**_COMMON, "split": (300, 100, 300), "width": 4, "final_blocks": 2, "epochs": 2, "lr": 3e-3,
                  "batch_size": 64, "score_subsample": 64, "network": _CNN, "methods": {"nas": {"n_trials": 2}}},
        "paper": {**_COMMON, "split": (3000, 1000, 10000), "width": 8, "final_blocks": 3, "epochs": 6, "lr": 1e-2,
                  "batch_size": 64, "score_subsample": 256, "network": _CNN, "methods": {"nas": {"n_trials": 4}}},
    }
    presets["full"] = {**presets["paper"], "threads": None, "split": (55000, 5000, 10000), "width": 32,
                       "final_blocks": 6, "epochs": 30, "score_subsample": 1000}

    downsample = 2  # 2×2 average pooling of the standardized images: 14×14

    def load(self, path=None) -> Data:
        data = super().load(path).shaped((1, 28, 28))
        if self.downsample == 1:
            return data

        def pool(split: Split) -> Split:
            return Split(torch.nn.functional.avg_pool2d(split.inputs, self.downsample), split.targets, split.index,
                         split.extras)

        return dataclasses.replace(data, train=pool(data.train), val=pool(data.val), test=pool(data.test))


class MnistVitProblem(MnistCnnProblem):
    name = "mnist_vit"
    notes = ("No published numbers for a vision transformer. Paper preset cut as mnist_cnn's (3,000 training "
             "images, 6 epochs) but on the 28×28 images: 7×7 patches, token width 32, one transformer layer (2 "
             "heads) grown by up to 2 token-wise blocks; learning rate 3e-3 chosen on the validation loss of the "
             "baseline (seed 0) among 1e-3 and 3e-3.")
    downsample = 1  # 28×28 images, 7×7 patches
    _vit = {"kind": "vit", "patch_size": 7, "heads": 2, "transformer_blocks": 1}
    presets = {
        "smoke": {**MnistCnnProblem.presets["smoke"], "width": 8, "network": _vit},
        "paper": {**MnistCnnProblem.presets["paper"], "width": 32, "final_blocks": 3, "lr": 3e-3, "network": _vit},
    }
    presets["full"] = {**presets["paper"], "threads": None, "split": (55000, 5000, 10000), "width": 64,
                       "final_blocks": 6, "epochs": 30, "score_subsample": 1000}


class NavierStokesCnnProblem(NavierStokesProblem):
    name = "navier_stokes_cnn"
    dataset = "navier_stokes"
    notes = ("The field-to-field residual CNN on the grid, beside the MLP rows of navier_stokes: the same split "
             "counts (1,000/200/500), here drawn from a dataset of 1,700 samples (the first 1,700 of the paper "
             "generator's; the MLP rows used 5,000), so the test samples differ but come from the same distribution. Paper "
             "preset cut to run on 2 CPU cores: 8 channels, 3×3 kernels, 1 to 3 residual blocks, 6 epochs; learning "
             "rate 1e-2 chosen on the validation loss of the baseline (seed 0) against 3e-3.")
    presets = {
        "smoke": {**_COMMON, "split": (140, 20, 40), "width": 4, "final_blocks": 2, "epochs": 4, "lr": 3e-3,
                  "batch_size": 32, "score_subsample": 32, "network": _CNN, "methods": {"nas": {"n_trials": 2}}},
        "paper": {**_COMMON, "split": (1000, 200, 500), "width": 8, "final_blocks": 3, "epochs": 6, "lr": 1e-2,
                  "batch_size": 32, "score_subsample": 200, "network": _CNN, "methods": {"nas": {"n_trials": 4}}},
    }
    presets["full"] = {**presets["paper"], "threads": None, "split": (4000, 500, 500), "width": 32, "final_blocks": 6,
                       "epochs": 120}

    def load(self, path) -> Data:
        data = super().load(path)
        nx, ny = data.info["grid_shape"]
        if data.x_train.shape[1] != nx * ny:
            raise UserError(f"navier_stokes_cnn needs ω(·, T) on the whole {nx}×{ny} grid (n_sensors 0); the "
                            f"dataset observes {data.x_train.shape[1]} points")
        return data.shaped((1, nx, ny), (1, nx, ny))

    def fields(self, targets: np.ndarray, data: Data) -> np.ndarray:
        """ω0 as one row per sample (C order, the dataset's numbering)."""
        return np.asarray(targets).reshape(len(targets), -1)
