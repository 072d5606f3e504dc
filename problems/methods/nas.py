"""Neural-architecture-search baseline (docs/methods.md §D): Optuna's TPE sampler over the depth, width and
learning rate of a fixed ResidualMLP (or of the problem's CNN/ViT, :mod:`problems.networks`; a ViT's
width rounded to a multiple of its heads), under the same total epoch budget as every other method.

``n_trials`` trials of ``epochs // n_trials`` epochs each (one stage, :class:`growth.FixedBaseline`);
the search space is depth ∈ {1, ..., final_blocks}, width ∈ [width/2, 2·width] (log scale, integer)
and learning rate ∈ [lr/10, 10·lr] (log scale). The objective is the validation loss at the end of
the trial; the trained network of the best trial is kept (no retraining, so the budget is exact).
The sampler is seeded with the run's seed; each trial's weights with seed + trial number. Trials use
the problem's ``weight_decay`` like every other method. NAS always searches on the validation set
(``cv_folds`` does not apply).
"""
from __future__ import annotations

from dataclasses import dataclass

import optuna
import torch

import growth
from problems.methods.base import Method, Settings, Trained, adam
from problems.networks import architecture


@dataclass(frozen=True, kw_only=True)
class Config(Settings):
    n_trials: int


class NAS(Method):
    name = "nas"
    Config = Config

    def train(self, problem, data, config, seed, device, callback) -> Trained:
        torch.manual_seed(seed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # optuna configures its logger on first use
        epochs = config.epochs // config.n_trials
        arch = architecture(problem)
        step = arch.heads if arch is not None and arch.kind == "vit" else 1  # a ViT's width: a multiple of its heads
        best: dict = {}
        history: list = []

        def objective(trial: optuna.Trial) -> float:
            depth = trial.suggest_int("depth", 1, config.final_blocks)
            width = trial.suggest_int("width", max(2, config.width // 2), 2 * config.width, log=True)
            width = step * max(1, round(width / step))
            lr = trial.suggest_float("lr", config.lr / 10, config.lr * 10, log=True)
            torch.manual_seed(seed + trial.number)
            net = self.network(config, data, depth, width=width, architecture=arch).to(device)

            def record(r, model=net):
                r = {**r, "trial": trial.number}
                history.append(r)
                callback(r, model)

            result = growth.grow(net, growth.FixedBaseline(), data.train.xy, data.val.xy, loss_fn=problem.loss_fn(),
                                 epochs_per_stage=epochs, max_stages=1, batch_size=config.batch_size,
                                 optimizer=adam(lr, config.weight_decay), seed=seed + trial.number, device=device,
                                 progress=False, callback=record)
            record({"event": "trial", "depth": depth, "width": width, "lr": lr, "val_loss": result.val_loss})
            if not best or result.val_loss < best["val_loss"]:
                best.update(val_loss=result.val_loss, net=result.net, trial=trial.number)
            return result.val_loss

        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=config.n_trials)
        return Trained(best["net"], history, f"best of {config.n_trials} trials: trial {best['trial']} "
                                             f"{study.best_params}")


METHOD = NAS()
