"""Sensitivity-based layer insertion, SensLI (docs/methods.md §C): the topological method's network and
stages, with two-weight virtual blocks scored in closed form (mini-batches of ``score_batch_size``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import growth
from problems.methods.base import Method, Settings


@dataclass(frozen=True, kw_only=True)
class Config(Settings):
    score_batch_size: Optional[int] = None


class Sensitivity(Method):
    name = "sensitivity"
    Config = Config

    def strategy(self, problem, data, config, seed):
        return growth.SensitivityStrategy(batch_size=config.score_batch_size)


METHOD = Sensitivity()
