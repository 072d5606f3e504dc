"""A PDE problem added the way the README says, file 1 of 2 (the ``pde_data/<name>.py`` of a new
problem; tests/problems/test_new_problem.py adds its registry line): −Δu = f on (0,1)², u = 0 on the
boundary, P1 elements on an n×n mesh through pde_data.fem, the source f = 1 + z₀ + z₁x with z ~ N(0, I₂)
the unknown, u at ``n_sensors`` seeded points plus noise the observations."""
from pathlib import Path

import numpy as np
import ufl
from mpi4py import MPI

from common.errors import ConfigError
from pde_data import fem
from pde_data.forward_model import BaseForwardModel

_COMMON = {"mesh_n": 4, "n_sensors": 5, "noise_level": 0.01, "sensor_seed": 0}


class ForwardModel(BaseForwardModel):
    name = "poisson"
    presets = {"smoke": dict(_COMMON, n_samples=24), "paper": dict(_COMMON, n_samples=100)}

    @classmethod
    def check(cls, settings):
        if settings["mesh_n"] < 1:
            raise ConfigError(f"setting 'mesh_n' must be a positive integer, got {settings['mesh_n']!r}")

    def __init__(self, settings, comm=MPI.COMM_SELF):
        s = self.settings = dict(settings)
        self.mesh = fem.unit_square(MPI.COMM_SELF, s["mesh_n"])
        self.space = V = fem.scalar_space(self.mesh)
        self.source, self.state = fem.function(V, "f"), fem.function(V, "u")
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        a = fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
        L = fem.form(self.source * v * ufl.dx)
        boundary = lambda x: np.isclose(x[0], 0) | np.isclose(x[0], 1) | np.isclose(x[1], 0) | np.isclose(x[1], 1)  # noqa: E731
        self.solver = fem.LinearSolver(a, L, [fem.dirichlet_bc(V, boundary, 0.0)], comm=MPI.COMM_SELF)
        self.points = fem.dof_coordinates(V)
        sensors = np.random.default_rng(s["sensor_seed"]).uniform(0.2, 0.8, size=(s["n_sensors"], 2))
        self.sensors = fem.PointEvaluator(V, sensors, MPI.COMM_SELF)
        self.n = fem.n_global_dofs(V)

    def layout(self):
        k = self.settings["n_sensors"]
        return {"parameters": self.n, "observations": k, "observations_clean": k, "states": self.n, "latent": 2}

    def static_arrays(self):
        return {"geometry/parameter_points": self.points, "geometry/cells": fem.cell_dofs(self.space)}

    def attributes(self):
        return {"equation": "-div grad u = f on (0,1)^2, u = 0 on the boundary", "mesh_n": self.settings["mesh_n"]}

    def solve(self, index, rng):
        z = rng.standard_normal(2)
        self.source.x.array[:] = 1.0 + z[0] + z[1] * self.points[:, 0]
        self.solver.solve(self.state)
        clean = self.sensors.evaluate(self.state)
        noise = self.settings["noise_level"] * np.sqrt(np.mean(clean ** 2)) * rng.standard_normal(len(clean))
        return {"parameters": self.source.x.array.copy(), "states": self.state.x.array.copy(), "latent": z,
                "observations_clean": clean, "observations": clean + noise}

    def export_xdmf(self, directory, index, rows):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.source.x.array[:], self.state.x.array[:] = rows["parameters"], rows["states"]
        fem.write_xdmf(Path(directory) / f"poisson_{index:06d}.xdmf", self.mesh, [self.source, self.state])
