"""Topological-derivative layer insertion (docs/methods.md §B): ResidualMLP (σ = 2·SiLU − tanh, tanh after
the input layer), ``n_blocks`` blocks, then TopologicalStrategy; ``final_blocks − n_blocks + 1`` stages
of ``epochs // stages`` epochs each. Q_l is estimated as ``score_estimation`` says (default ``"auto"``:
the certified doubling subset of :mod:`growth.adaptive_td` where the exact blocks cost more than half an
epoch, else exact; ``"adaptive"``; ``"exact"``), or from a fixed random subset of ``score_subsample``
training samples where the preset sets it (an unbiased estimate, :mod:`growth.topological`); seeded by
the run's seed, in mini-batches of ``score_batch_size``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import growth
from problems.methods.base import Method, Settings


@dataclass(frozen=True, kw_only=True)
class Config(Settings):
    score_batch_size: Optional[int] = None
    score_subsample: Optional[int] = None
    score_estimation: str = "auto"


class Topological(Method):
    name = "topological"
    Config = Config

    def strategy(self, problem, data, config, seed):
        return growth.TopologicalStrategy(batch_size=config.score_batch_size, subsample=config.score_subsample,
                                          subsample_seed=seed, estimation=config.score_estimation)


METHOD = Topological()
