"""The compared methods, by name. Each is a :class:`~problems.methods.base.Method` in its own module of this
package (its typed config, network, strategy and schedule in one place); adding a method adds one module
and one line here. The order is the order of the sweep, the tables and the figures.

Every method trains for at most the preset's ``epochs`` in total (growth methods may stop earlier when
the validation loss stops improving), with Adam at the preset's ``lr`` and the L2 penalty
(``weight_decay``/2)·‖θ‖² on the trained parameters (SRL's correction networks excepted).
"""
from __future__ import annotations

import dataclasses
import importlib

from common.errors import ConfigError, UserError
from problems.base import Data, Problem
from problems.config import build, field_names
from problems.methods.base import Method, Settings, Trained, n_epochs
from problems.networks import architecture

__all__ = ["METHODS", "method", "check_method", "available", "check_available", "settings_for", "config_for", "train",
           "n_epochs", "Trained"]

METHODS = {
    "topological": "problems.methods.topological",
    "layerwise": "problems.methods.layerwise",
    "layerwise_srl": "problems.methods.layerwise_srl",
    "sensitivity": "problems.methods.sensitivity",
    "random": "problems.methods.random_insertion",
    "net2deeper": "problems.methods.net2deeper",
    "forward_thinking": "problems.methods.forward_thinking",
    "baseline": "problems.methods.baseline",
    "nas": "problems.methods.nas",
}


def check_method(name: str) -> None:
    """UserError naming ``name`` if it is not one of :data:`METHODS`."""
    if name not in METHODS:
        raise UserError(f"unknown method '{name}' (known: {', '.join(METHODS)})")


def method(name: str) -> Method:
    """The registered method ``name`` (UserError if unknown)."""
    check_method(name)
    return importlib.import_module(METHODS[name]).METHOD


def available(problem: Problem, name: str) -> bool:
    """Whether method ``name`` can train ``problem``'s network: every method on the ResidualMLP, only
    those defined on the growable protocol on a CNN or ViT (``network`` setting)."""
    return architecture(problem) is None or not method(name).needs_stack


def check_available(problem: Problem, name: str) -> None:
    """UserError (one line) unless method ``name`` is :func:`available` for ``problem``."""
    if not available(problem, name):
        offered = [m for m in METHODS if available(problem, m)]
        raise UserError(f"method '{name}' needs a plain MLP stack (growth.Stack); problem '{problem.name}' "
                        f"trains a {architecture(problem).kind} network (available: {', '.join(offered)})")


def config_for(problem: Problem, name: str) -> Settings:
    """The typed settings of method ``name`` on ``problem``'s preset: the method's defaults, the preset's
    settings that the method has, then the preset's overrides for the method. A preset key that no
    method has, an override the method does not have, or a mistyped value is a one-line ConfigError."""
    where = f"{problem.name} preset '{problem.preset}'"
    shared = {k: v for k, v in problem.settings.items() if k not in ("methods", "network")}
    known = {k for n in METHODS for k in field_names(method(n).Config)}
    unknown = [k for k in shared if k not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown setting '{unknown[0]}' (no method has it)")
    overrides = problem.settings.get("methods", {})
    for other in overrides:
        if other not in METHODS:
            raise ConfigError(f"{where}: settings for unknown method '{other}' (known: {', '.join(METHODS)})")
    cls = method(name).Config
    values = {k: v for k, v in shared.items() if k in field_names(cls)}
    return build(cls, {**values, **overrides.get(name, {})}, f"{where}, method {name}")


def settings_for(problem: Problem, name: str) -> dict:
    """Every setting a run of method ``name`` uses, as a plain dict (config.json); with the problem's
    ``network`` (:class:`problems.networks.Architecture`) where its preset sets one."""
    settings = dataclasses.asdict(config_for(problem, name))
    arch = architecture(problem)
    return settings if arch is None else {**settings, "network": dataclasses.asdict(arch)}


def train(problem: Problem, data: Data, name: str, seed: int, device, callback) -> Trained:
    """Train method ``name`` on ``data`` (seeded by ``seed``); ``callback(record, model)`` sees every log
    record together with the model being trained."""
    return method(name).train(problem, data, config_for(problem, name), seed, device, callback)
