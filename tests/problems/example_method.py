"""A method added the way the README says: this one module and one line in problems.methods.METHODS
(tests/problems/test_registry.py adds the line). Net2DeeperNet insertion without symmetry-breaking noise:
every inserted block is exactly the identity (zero residual), so growth preserves the function."""
from __future__ import annotations

from dataclasses import dataclass

import growth
from problems.methods.base import Method, Settings


@dataclass(frozen=True, kw_only=True)
class Config(Settings):
    insertion_noise: float = 0.0


class ExactInsertion(Method):
    name = "exact_insertion"
    Config = Config

    def strategy(self, problem, data, config, seed):
        return growth.Net2DeeperNet(noise=config.insertion_noise)


METHOD = ExactInsertion()
