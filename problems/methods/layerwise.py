"""Layerwise training (docs/methods.md §A): a ResidualMLP (ELU, linear input layer) grown by appending a
zero residual block per stage, trained with the L1 penalty α‖θ_new‖₁, the manifold regularizer
γ_l Φm (γ_l = γ0 ρ^(l−2)) and the problem's physics-informed term ``physics_weight``·Φp; weights with
|w| ≤ ``threshold`` are zeroed after every stage.

Manifold sets (``manifold``): ``"noisy_copies"`` (``manifold_copies`` copies of each training input
with noise of ``manifold_noise`` × its own standard deviation), ``"clusters"`` (k-means with
``manifold_clusters`` groups), ``"labels"`` (the class labels, the split's ``labels`` extra) or None;
``manifold_subsample`` evaluates Φm on a fixed random subset of the manifold set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from common.errors import ConfigError
from growth.layerwise import LayerwiseStrategy
from growth.regularizers import Manifold, PhysicsPenalty, StageSchedule
from problems.methods.base import Method, Settings, default_of


@dataclass(frozen=True, kw_only=True)
class Config(Settings):
    activation: str = "elu"
    input_activation: Optional[str] = None
    alpha: float = default_of(LayerwiseStrategy, "alpha")
    manifold: Optional[Literal["noisy_copies", "clusters", "labels"]] = None
    manifold_copies: int = 10
    manifold_noise: float = 0.01
    manifold_clusters: int = 5
    manifold_subsample: Optional[int] = None
    gamma0: Optional[float] = None
    rho: Optional[float] = None
    physics: Optional[str] = None
    physics_weight: float = 1.0
    threshold: float = default_of(LayerwiseStrategy, "threshold")

    def __post_init__(self):
        if self.manifold is not None and (self.gamma0 is None or self.rho is None):
            raise ConfigError(f"manifold '{self.manifold}' needs the settings gamma0 and rho (γ_l = γ0 ρ^(l−2))")


def manifold_set(data, config: Config, seed: int) -> Optional[Manifold]:
    """The manifold set of ``config.manifold`` from the training split, on the inputs' device."""
    x, kind, sub = data.x_train.cpu(), config.manifold, config.manifold_subsample
    if kind == "noisy_copies":
        manifold = Manifold.from_noisy_copies(x, config.manifold_copies, config.manifold_noise, seed=seed,
                                              subsample=sub)
    elif kind == "clusters":
        manifold = Manifold.from_clusters(x, config.manifold_clusters, seed=seed, subsample=sub)
    elif kind == "labels":
        manifold = Manifold.from_labels(x, data.train.extras["labels"], seed=seed, subsample=sub)
    else:
        return None
    manifold.inputs = manifold.inputs.to(data.x_train.device)
    return manifold


class Layerwise(Method):
    name = "layerwise"
    Config = Config
    needs_stack = True

    def strategy(self, problem, data, config, seed):
        manifold = manifold_set(data, config, seed)
        physics = None
        if config.physics:
            physics = PhysicsPenalty(problem.physics(data, config.physics), config.physics_weight)
        schedule = StageSchedule(config.gamma0, config.rho) if manifold is not None else None
        return LayerwiseStrategy(alpha=config.alpha, manifold=manifold, schedule=schedule, physics=physics,
                                 threshold=config.threshold)


METHOD = Layerwise()
