"""Layerwise training, then sequential residual learning (docs/methods.md §A): after the layerwise stages,
``srl_stages`` small networks (``srl_hidden`` hidden layers of ``srl_width``, ``srl_activation``) are
fitted one after another to the remaining error; the model is the sum. The layerwise stages and the SRL
networks share the budget, ``epochs // (stages + srl_stages)`` epochs each (an SRL stage at most
``srl_epochs`` instead where the preset sets it; under cross-validation the chosen count of every
stage). SRL networks train without the L2 penalty.

For classification both phases train with the cross-entropy on the logits, like every other method:
SRL stage k minimizes the loss of the sum of all networks so far (boosting in function space; for the
MSE exactly the residual fit of the sources), see :mod:`growth.srl`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from growth.srl import select_srl_epochs, sequential_residual_learning
from problems.methods.base import Schedule, Trained, adam, decided
from problems.methods.cv import Decisions
from problems.methods.layerwise import Config as LayerwiseConfig
from problems.methods.layerwise import Layerwise


@dataclass(frozen=True, kw_only=True)
class Config(LayerwiseConfig):
    srl_stages: int = 3
    srl_width: int = 10
    srl_hidden: int = 2
    srl_activation: str = "relu"
    srl_epochs: Optional[int] = None


class LayerwiseSRL(Layerwise):
    name = "layerwise_srl"
    Config = Config
    keeps_stage_networks = True

    def schedule(self, config, decisions=None):
        n_stages = config.final_blocks - config.n_blocks + 1
        plan = Schedule(config.n_blocks, n_stages, config.epochs // (n_stages + config.srl_stages))
        return decided(plan, decisions)

    def srl_epochs(self, config: Config, decisions: Optional[Decisions] = None):
        """The most epochs of one SRL stage: ``srl_epochs`` if set, else the per-stage share of the
        budget; after cross-validation, the chosen count of every stage (a list)."""
        if decisions is not None and decisions.srl_epochs is not None:
            return decisions.srl_epochs
        return config.srl_epochs if config.srl_epochs is not None else self.schedule(config).stage_epochs

    def _srl_options(self, problem, config: Config, seed: int) -> dict:
        return dict(n_stages=config.srl_stages, width=config.srl_width, n_hidden=config.srl_hidden,
                    activation=config.srl_activation, batch_size=config.batch_size, optimizer=adam(config.lr),
                    seed=seed, loss_fn=problem.loss_fn())

    def choose_srl_epochs(self, decisions: Decisions, problem, config: Config, seed: int, nets: list,
                          fold_data: list) -> Decisions:
        """``decisions`` with the epochs of every SRL stage chosen on the folds' networks after the chosen
        number of stages (:func:`growth.srl.select_srl_epochs`)."""
        chosen = select_srl_epochs(nets, [(fd.train.xy, fd.val.xy) for fd in fold_data], epochs=self.srl_epochs(config),
                                   **self._srl_options(problem, config, seed))
        return dataclasses.replace(decisions, srl_epochs=chosen)

    def finish(self, problem, data, config, seed, decisions, trained, callback) -> Trained:
        """SRL on the layerwise network, validated on ``data.val`` (on the training loss if it is empty)."""
        srl = sequential_residual_learning(
            trained.model, data.train.xy, data.val.xy if len(data.x_val) else None,
            epochs=self.srl_epochs(config, decisions), **self._srl_options(problem, config, seed),
            callback=callback)
        return Trained(srl.model, trained.history + srl.history, f"{trained.stop_reason}; srl: {srl.stop_reason}")


METHOD = LayerwiseSRL()
