"""Net2DeeperNet (docs/methods.md §D): the topological method's network and stages; an identity block
before the head plus N(0, ``net2deeper_noise``²) symmetry-breaking noise."""
from __future__ import annotations

from dataclasses import dataclass

import growth
from problems.methods.base import Method, Settings, default_of


@dataclass(frozen=True, kw_only=True)
class Config(Settings):
    net2deeper_noise: float = default_of(growth.Net2DeeperNet, "noise")


class Net2Deeper(Method):
    name = "net2deeper"
    Config = Config

    def strategy(self, problem, data, config, seed):
        return growth.Net2DeeperNet(noise=config.net2deeper_noise)


METHOD = Net2Deeper()
