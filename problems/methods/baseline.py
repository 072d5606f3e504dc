"""The fixed baseline (docs/methods.md §D): the ResidualMLP of depth ``final_blocks`` (the growth
methods' cap), all ``epochs`` in one stage."""
from __future__ import annotations

import growth
from problems.methods.base import Method, Schedule, decided


class Baseline(Method):
    name = "baseline"

    def strategy(self, problem, data, config, seed):
        return growth.FixedBaseline()

    def schedule(self, config, decisions=None):
        return decided(Schedule(config.final_blocks, 1, config.epochs), decisions)


METHOD = Baseline()
