"""Forward Thinking (docs/methods.md §D): a PlainMLP (ELU, no skip connections); each stage adds a layer
with weights N(0, ``forward_thinking_std``²), freezes the earlier layers and re-initializes the head."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import growth
from problems.methods.base import Method, Settings, default_of


@dataclass(frozen=True, kw_only=True)
class Config(Settings):
    activation: str = "elu"
    input_activation: Optional[str] = "elu"
    forward_thinking_std: float = default_of(growth.ForwardThinking, "std")


class ForwardThinking(Method):
    name = "forward_thinking"
    Config = Config
    plain_network = True
    needs_stack = True

    def strategy(self, problem, data, config, seed):
        return growth.ForwardThinking(std=config.forward_thinking_std)


METHOD = ForwardThinking()
