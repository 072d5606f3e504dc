"""Topological-derivative layer insertion (docs/methods.md §B): ResidualMLP (σ = 2·SiLU − tanh, tanh after
the input layer), ``n_blocks`` blocks, then TopologicalStrategy; ``final_blocks − n_blocks + 1`` stages
of ``epochs // stages`` epochs each. Q_l is formed from a fixed random subset of ``score_subsample``
training samples (seeded by the run's seed) where the preset sets it, an unbiased estimate
(:mod:`growth.topological`), else from all, in mini-batches of ``score_batch_size``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import growth
from problems.methods.base import Method, Settings


@dataclass(frozen=True, kw_only=True)
class Config(Settings):
    score_batch_size: Optional[int] = None
    score_subsample: Optional[int] = None


class Topological(Method):
    name = "topological"
    Config = Config

    def strategy(self, problem, data, config, seed):
        return growth.TopologicalStrategy(batch_size=config.score_batch_size, subsample=config.score_subsample,
                                          subsample_seed=seed)


METHOD = Topological()
