"""Random insertion (docs/methods.md §D): the topological method's network and stages; a block at a
random location, weights N(0, ``random_std``²) (``random_init="random"``, variant I) or zero
(``"zero"``, variant II)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import growth
from problems.methods.base import Method, Settings, default_of


@dataclass(frozen=True, kw_only=True)
class Config(Settings):
    random_init: Literal["random", "zero"] = default_of(growth.RandomInsertion, "init")
    random_std: float = default_of(growth.RandomInsertion, "std")


class RandomInsertion(Method):
    name = "random"
    Config = Config

    def strategy(self, problem, data, config, seed):
        return growth.RandomInsertion(init=config.random_init, std=config.random_std)


METHOD = RandomInsertion()
