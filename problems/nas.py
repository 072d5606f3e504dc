"""Neural-architecture-search baseline (METHODS.md §D): Optuna's TPE sampler over the depth, width and
learning rate of a fixed ResidualMLP, under the same total epoch budget as every other method.

``n_trials`` trials of ``epochs // n_trials`` epochs each (one stage, :class:`growth.FixedBaseline`);
the search space is depth ∈ {1, ..., final_blocks}, width ∈ [width/2, 2·width] (log scale, integer)
and learning rate ∈ [lr/10, 10·lr] (log scale). The objective is the validation loss at the end of
the trial; the trained network of the best trial is kept (no retraining, so the budget is exact).
The sampler is seeded with the run's seed; each trial's weights with seed + trial number. Trials use
the problem's ``weight_decay`` like every other method.
"""
from __future__ import annotations

import optuna
import torch

import growth
from problems.base import Data, Problem


def search(problem: Problem, data: Data, s: dict, seed: int, device, callback):
    from problems.methods import Trained, adam, build_network

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials = s["n_trials"]
    epochs = s["epochs"] // n_trials
    best: dict = {}
    history: list = []

    def objective(trial: optuna.Trial) -> float:
        depth = trial.suggest_int("depth", 1, s["final_blocks"])
        width = trial.suggest_int("width", max(2, s["width"] // 2), 2 * s["width"], log=True)
        lr = trial.suggest_float("lr", s["lr"] / 10, s["lr"] * 10, log=True)
        torch.manual_seed(seed + trial.number)
        net = build_network(s, data, depth, width=width).to(device)

        def record(r, model=net):
            r = {**r, "trial": trial.number}
            history.append(r)
            callback(r, model)

        result = growth.grow(net, growth.FixedBaseline(), data.train, data.val, loss_fn=problem.loss_fn(),
                             epochs_per_stage=epochs, max_stages=1, batch_size=s["batch_size"],
                             optimizer=adam(lr, s.get("weight_decay", 0.0)), seed=seed + trial.number, device=device, progress=False,
                             callback=record)
        record({"event": "trial", "depth": depth, "width": width, "lr": lr, "val_loss": result.val_loss})
        if not best or result.val_loss < best["val_loss"]:
            best.update(val_loss=result.val_loss, net=result.net, trial=trial.number)
        return result.val_loss

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return Trained(best["net"], history, f"best of {n_trials} trials: trial {best['trial']} {study.best_params}")
