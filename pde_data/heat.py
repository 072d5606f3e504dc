"""Steady heat conduction with a log-normal random conductivity (the sources' heat problem).

    −∇·(e^m ∇u) = f   in Ω = (0,1)²,   f = `source` (20),
    u = 0 on x = 0, x = 1 and y = 0,   e^m ∂u/∂n = 0 (insulated) on y = 1.

Discretization: P1 Lagrange on the unit square cut into mesh_n × mesh_n squares, each split
into two triangles ("9×9 mesh" = 9 cells per side = 10 × 10 vertices = 100 dofs, as the
sources' FEniCS code `UnitSquareMesh(9, 9)`). All quantities are nondimensional.

Parameter: m = m̄ + Σ_{k<n_modes} sqrt(λ_k) z_k φ_k, z ~ N(0, I), the truncated Karhunen–Loève
expansion of the BiLaplacian (Matérn ν = 1) prior of `pde_data.priors` with the given correlation
length, marginal standard deviation, mean and Robin boundary condition. z is stored in /latent,
the nodal values of m (at /geometry/parameter_points = the dof coordinates) in /parameters.

Conductivity: κ_h = Σ_k e^{m_k} φ_k, the P1 interpolant of e^m (not e^{m_h} at quadrature
points). Then the stiffness matrix is exactly linear in the nodal values e^{m_k},

    K(m)_ij = ∫ κ_h ∇φ_i·∇φ_j = Σ_k e^{m_k} T_k[i,j],   T_k[i,j] = ∫ φ_k ∇φ_i·∇φ_j dx,

and the stored tensor T (/operators/stiffness_*) reproduces the solver's matrix to rounding,
so a physics-informed loss ‖K(m)u − F‖ needs no dolfinx and no quadrature choice. For P1 on
triangles ∇φ_i·∇φ_j is constant per cell, so T_k = (1/3) × the element stiffness on each cell
containing vertex k, computed exactly in closed form.

Observations: u at `n_sensors` fixed points drawn once, uniformly on [0.1, 0.9]², from
numpy.random.default_rng(sensor_seed) (/geometry/sensor_points), i.e. B u with the P1
observation matrix B (barycentric coordinates; /operators/observation_*). Noise: Gaussian,
independent, with standard deviation noise_level × RMS(B u) of that sample (a relative noise
level, "5 % noise", that scales with the signal); /observations_clean is B u without noise.
Per sample the rng gives first z (n_modes normals), then the noise (n_sensors normals).

Parallelism: a sample is small (2-D, direct solve), so the mesh always lives on MPI.COMM_SELF
and samples are distributed over processes by the driver; with a larger `comm` every rank
computes the same sample (identical rows), which keeps files independent of process counts.
"""
from pathlib import Path

import numpy as np
import scipy.sparse
import ufl
from mpi4py import MPI

from pde_data import fem
from common.errors import ConfigError
from pde_data.forward_model import BaseForwardModel
from pde_data.priors import BiLaplacianPrior

SENSOR_BOX = (0.1, 0.9)

_COMMON = {
    "mesh_n": 9,
    "n_modes": 12,
    "n_sensors": 10,
    "noise_level": 0.05,
    "source": 20.0,
    "prior_mean": 0.0,
    "prior_std": 1.0,
    "prior_correlation_length": 0.3,
    "prior_robin": True,
    "sensor_seed": 0,
}


def _dirichlet_boundary(x):
    """x = 0, x = 1 or y = 0 (the top y = 1 is insulated)."""
    return np.isclose(x[0], 0.0) | np.isclose(x[0], 1.0) | np.isclose(x[1], 0.0)


def weighted_stiffness_tensor(space):
    """T_k[i,j] = ∫ φ_k ∇φ_i·∇φ_j dx for a P1 space on triangles or tetrahedra, as COO arrays
    (rows i, cols j, k, values) with unique (i, j, k), sorted. Exact: on a cell e,
    ∫_e φ_k ∇φ_i·∇φ_j = |e| ∇φ_i·∇φ_j / (d+1). Vectorized over cells."""
    dofs, volumes, gradients = fem.p1_simplex_geometry(space)
    n = fem.n_global_dofs(space)
    n_cells, n_local = dofs.shape
    element = volumes[:, None, None] * np.einsum("cid,cjd->cij", gradients, gradients) / n_local
    shape = (n_cells, n_local, n_local, n_local)  # (cell, k, i, j)
    k = np.broadcast_to(dofs[:, :, None, None], shape).astype(np.int64)
    i = np.broadcast_to(dofs[:, None, :, None], shape).astype(np.int64)
    j = np.broadcast_to(dofs[:, None, None, :], shape).astype(np.int64)
    values = np.broadcast_to(element[:, None, :, :], shape)
    keys = ((i * n + j) * n + k).ravel()
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=values.ravel())
    return unique // (n * n), (unique // n) % n, unique % n, summed


class ForwardModel(BaseForwardModel):
    """The heat-conductivity forward model: m (KL coefficients z) -> u -> noisy sensor values."""

    name = "heat"
    presets = {"paper": dict(_COMMON, n_samples=10000), "smoke": dict(_COMMON, n_samples=200)}

    @classmethod
    def check(cls, settings):
        """Refuse invalid values, naming the key."""
        def fail(key, requirement):
            raise ConfigError(f"setting '{key}' must be {requirement}, got {settings[key]!r}")

        if settings["mesh_n"] < 1:
            fail("mesh_n", "a positive integer")
        n_dofs = (settings["mesh_n"] + 1) ** 2
        if not 1 <= settings["n_modes"] <= n_dofs:
            fail("n_modes", f"in [1, n_dofs = {n_dofs}]")
        if settings["n_sensors"] < 1:
            fail("n_sensors", "a positive integer")
        for key in ("noise_level", "source", "prior_mean"):
            if not np.isfinite(settings[key]):
                fail(key, "finite")
        if settings["noise_level"] < 0:
            fail("noise_level", "non-negative")
        for key in ("prior_std", "prior_correlation_length"):
            if not (np.isfinite(settings[key]) and settings[key] > 0):
                fail(key, "positive and finite")
        if settings["sensor_seed"] < 0:
            fail("sensor_seed", "a non-negative integer")

    def __init__(self, settings, comm=MPI.COMM_SELF):
        self.settings = dict(settings)
        self.comm = comm
        s = self.settings
        self.mesh = fem.unit_square(MPI.COMM_SELF, s["mesh_n"])
        self.space = V = fem.scalar_space(self.mesh)
        self.n_dofs = fem.n_global_dofs(V)
        self.prior = BiLaplacianPrior.from_correlation(
            V, s["prior_correlation_length"], s["prior_std"], s["prior_mean"], s["prior_robin"])
        self.kl = self.prior.kl(s["n_modes"])
        self.conductivity = fem.function(V, "conductivity")
        self.state = fem.function(V, "temperature")
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self.a = fem.form(self.conductivity * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
        self.L = fem.form(float(s["source"]) * v * ufl.dx)
        self.dirichlet_dofs = np.sort(fem.boundary_dofs(V, _dirichlet_boundary)).astype(np.int64)
        bc = fem.dirichlet_bc(V, _dirichlet_boundary, 0.0)
        self.solver = fem.LinearSolver(self.a, self.L, [bc], comm=MPI.COMM_SELF)
        self.sensor_points = np.random.default_rng(s["sensor_seed"]).uniform(
            *SENSOR_BOX, size=(s["n_sensors"], 2))
        evaluator = fem.PointEvaluator(V, self.sensor_points, MPI.COMM_SELF)
        rows, cols, values = evaluator.p1_matrix()
        self.B = scipy.sparse.csr_matrix((values, (rows, cols)),
                                         shape=(s["n_sensors"], self.n_dofs))

    def layout(self):
        """Row widths of the per-sample datasets."""
        n_obs = self.settings["n_sensors"]
        return {"parameters": self.n_dofs, "observations": n_obs, "observations_clean": n_obs,
                "states": self.n_dofs, "latent": self.settings["n_modes"]}

    def solve(self, index, rng):
        """Sample `index`: z ~ N(0, I) then noise, both from `rng`; returns the rows."""
        z, m = self.kl.sample(rng)
        self.conductivity.x.array[:] = np.exp(m)
        self.solver.solve(self.state)
        u = self.state.x.array.copy()
        clean = self.B @ u
        noise_std = self.settings["noise_level"] * np.sqrt(clean @ clean / len(clean))
        noisy = clean + noise_std * rng.standard_normal(len(clean))
        return {"parameters": m, "observations": noisy, "observations_clean": clean,
                "states": u, "latent": z}

    def static_arrays(self):
        """Geometry for plots and the operators of a physics-informed loss (plain arrays)."""
        points = fem.dof_coordinates(self.space)
        t_rows, t_cols, t_k, t_values = weighted_stiffness_tensor(self.space)
        b = self.B.tocoo()
        mass = self.prior.M.tocoo()
        return {
            "geometry/parameter_points": points,
            "geometry/state_points": points,
            "geometry/cells": fem.cell_dofs(self.space).astype(np.int64),
            "geometry/sensor_points": self.sensor_points,
            "operators/stiffness_rows": t_rows,
            "operators/stiffness_cols": t_cols,
            "operators/stiffness_k": t_k,
            "operators/stiffness_values": t_values,
            "operators/load": fem.assemble_vector_array(self.L),
            "operators/dirichlet_dofs": self.dirichlet_dofs,
            "operators/observation_rows": b.row.astype(np.int64),
            "operators/observation_cols": b.col.astype(np.int64),
            "operators/observation_values": b.data,
            "operators/mass_rows": mass.row.astype(np.int64),
            "operators/mass_cols": mass.col.astype(np.int64),
            "operators/mass_values": mass.data,
            "operators/kl_modes": self.kl.modes,
            "operators/kl_eigenvalues": self.kl.eigenvalues,
            "operators/prior_mean": self.kl.mean,
        }

    def attributes(self):
        """Physical settings, readable without the code."""
        s = self.settings
        return {
            "equation": "-div(exp(m) grad u) = f on (0,1)^2",
            "discretization": "P1 on mesh_n x mesh_n squares, each cut into 2 triangles",
            "boundary": "u = 0 on x=0, x=1, y=0; insulated (zero flux) on y=1",
            "source": s["source"],
            "conductivity": "P1 interpolant of exp(m): K(m) = sum_k exp(m_k) T_k",
            "noise_level": s["noise_level"],
            "noise_model": "N(0, (noise_level * RMS(clean observations of the sample))^2) iid",
            "sensor_layout": f"uniform on {list(SENSOR_BOX)}^2 from default_rng(sensor_seed)",
            "prior": "BiLaplacian N(prior_mean, (delta - gamma Laplacian)^-2), truncated KL",
            "units": "nondimensional",
            "prior_gamma": self.prior.gamma,
            "prior_delta": self.prior.delta,
            "n_dofs": self.n_dofs,
        }

    def dataset_attributes(self):
        """Shapes and meanings of the sparse operators."""
        n, n_obs = self.n_dofs, self.settings["n_sensors"]
        return {
            "operators/stiffness_values": {
                "shape": [n, n, n],
                "meaning": "T[row, col, k] = int phi_k grad phi_row . grad phi_col; "
                           "K(m) = sum_k exp(m_k) T[:, :, k]"},
            "operators/load": {"meaning": "F_i = int f phi_i (no boundary conditions)"},
            "operators/dirichlet_dofs": {"meaning": "dofs with u = 0; K u = F holds on the others"},
            "operators/observation_values": {"shape": [n_obs, n],
                                             "meaning": "B: observations_clean = B u"},
            "operators/mass_values": {"shape": [n, n], "meaning": "M_ij = int phi_i phi_j"},
            "operators/kl_modes": {"meaning": "M-orthonormal; m = prior_mean + modes @ "
                                              "(sqrt(kl_eigenvalues) * latent)"},
        }

    def export_xdmf(self, directory, index, rows):
        """Write m and u of sample `index` as P1 functions to DIRECTORY/heat_<index>.xdmf."""
        parameter = fem.function(self.space, "m")
        parameter.x.array[:] = rows["parameters"]
        state = fem.function(self.space, "u")
        state.x.array[:] = rows["states"]
        Path(directory).mkdir(parents=True, exist_ok=True)
        fem.write_xdmf(Path(directory) / f"heat_{index:06d}.xdmf", self.mesh, [parameter, state])
