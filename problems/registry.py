"""Problem name -> the class binding it. Adding a problem adds one line here."""
from __future__ import annotations

import importlib

from common.errors import UserError

PROBLEMS = {
    "heat": "problems.heat:HeatProblem",
    "navier_stokes": "problems.navier_stokes:NavierStokesProblem",
    "wind": "problems.wind:WindProblem",
    "boston": "problems.boston:BostonProblem",
    "mnist": "problems.mnist:MnistProblem",
    "mnist_cnn": "problems.grids:MnistCnnProblem",
    "mnist_vit": "problems.grids:MnistVitProblem",
    "navier_stokes_cnn": "problems.grids:NavierStokesCnnProblem",
}


def problem_class(name: str):
    """The :class:`problems.base.Problem` subclass of ``name`` (UserError if unknown)."""
    if name not in PROBLEMS:
        raise UserError(f"unknown problem '{name}' (known: {', '.join(PROBLEMS)})")
    module, cls = PROBLEMS[name].split(":")
    return getattr(importlib.import_module(module), cls)
