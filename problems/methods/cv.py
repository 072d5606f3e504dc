"""The cross-validation protocol (``cv_folds: K``): choose a method's data-dependent decisions by K-fold
cross-validation on the training and validation sets pooled, never the test set, then refit.

Folds: ``RandomState(problem.split_seed).permutation`` of the pooled rows cut into K nearly equal parts
(the same for every method and seed). On fold i the method trains on the other K − 1 parts with part i
as validation set and no plateau stopping (every stage runs), and the decisions minimize the validation
loss averaged over the folds:

* the number of stages S (growth methods: the candidates are the stage ends) or, for a method of one
  stage (the fixed baseline), its number of epochs;
* layerwise_srl: the epochs of every SRL stage, chosen stage by stage on the fold networks after S
  stages (:meth:`problems.methods.layerwise_srl.LayerwiseSRL.choose_srl_epochs`).

The refit trains exactly these stages/epochs (no plateau test) on the pooled data, which has no
validation set. Every per-sample array of the data (inputs, targets, sample indices, named extras such
as MNIST's labels) is re-split with the rows (:meth:`problems.base.Data.pooled`).
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from problems.base import Data, Problem


@dataclass(frozen=True)
class Decisions:
    """What cross-validation chose (:mod:`problems.methods.cv`): the number of stages (growth methods)
    or of epochs (a one-stage method), the epochs of every SRL stage, and the fold-averaged loss."""

    cv_loss: float
    stages: Optional[int] = None
    stage_epochs: Optional[int] = None
    srl_epochs: Optional[list] = None

    def record(self, folds: int) -> dict:
        """The ``selection`` log record."""
        chosen = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return {"event": "selection", "folds": folds, **chosen}


def cross_validate(method, problem: Problem, data: Data, config, seed: int,
                   device) -> tuple[Decisions, Data]:
    """(the decisions, the pooled data on which ``method.train`` refits with them fixed); ``method`` is a
    :class:`problems.methods.base.Method`."""
    pooled = data.pooled()
    folds = np.array_split(np.random.RandomState(problem.split_seed).permutation(len(pooled.train)),
                           config.cv_folds)
    by_epoch = method.schedule(config).n_stages == 1
    curves, snapshots, fold_data = [], [], []
    for fold in folds:
        fd = pooled.with_validation(fold)
        curve, nets = [], []

        def record(r, net, curve=curve, nets=nets):
            if r["event"] == ("epoch" if by_epoch else "stage"):
                curve.append(r["val_loss"])
            if r["event"] == "stage" and method.keeps_stage_networks:
                nets.append(copy.deepcopy(net))

        torch.manual_seed(seed)
        method.grow(problem, fd, config, seed, device, record, patience=math.inf)
        curves.append(curve)
        snapshots.append(nets)
        fold_data.append(fd)
    common = min(len(c) for c in curves)
    mean = np.mean([c[:common] for c in curves], axis=0)
    best = int(np.argmin(mean)) + 1
    decisions = Decisions(float(mean[best - 1]), **({"stage_epochs": best} if by_epoch else {"stages": best}))
    if method.keeps_stage_networks:
        decisions = method.choose_srl_epochs(decisions, problem, config, seed,
                                             [nets[best - 1] for nets in snapshots], fold_data)
    return decisions, pooled
