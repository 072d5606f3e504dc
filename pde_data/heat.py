"""Steady heat conduction with a log-normal random conductivity (the sources' heat problem).

    −∇·(e^m ∇u) = f   in Ω = (0,1)²,   f = `source` (20),
    u = 0 on three sides,   e^m ∂u/∂n = 0 (insulated) on the fourth: y = 1 (`insulated_edge`
    "top") or x = 1 ("right", the sources' choice in DOLFIN 2019's coordinates; corners Dirichlet).

Discretization: P1 Lagrange on the unit square cut into mesh_n × mesh_n squares, each split
into two triangles along the "right" diagonal ("9×9 mesh" = 9 cells per side = 10 × 10 vertices =
100 dofs, as the sources' FEniCS code `UnitSquareMesh(9, 9)`). All quantities are nondimensional.

Parameter m, two priors (`prior`), both m = m̄ + Σ_k sqrt(λ_k) z_k φ_k with z ~ N(0, I):
* "sources": the sources' own prior (:mod:`pde_data.heat_sources`), m = E Σ z with z ~ N(0, I₁₂),
  E (100×12, orthonormal columns) and Σ (diagonal ≈ 1.006) as published, rows mapped from DOLFIN
  2019's dof numbering to ours by coordinates; m̄ = 0, φ_k = E[:, k], λ_k = Σ_kk². A nearly white
  field on a 12-dimensional subspace (mesh_n 9 and n_modes 12 only).
* "bilaplacian": the truncated Karhunen–Loève expansion of the BiLaplacian (Matérn ν = 1) prior of
  `pde_data.priors` with the given correlation length, marginal standard deviation, mean and Robin
  boundary condition (modes M-orthonormal).
z is stored in /latent, the nodal values of m (at /geometry/parameter_points = the dof coordinates)
in /parameters.

Conductivity: κ_h = Σ_k e^{m_k} φ_k, the P1 interpolant of e^m (not e^{m_h} at quadrature
points). Then the stiffness matrix is exactly linear in the nodal values e^{m_k},

    K(m)_ij = ∫ κ_h ∇φ_i·∇φ_j = Σ_k e^{m_k} T_k[i,j],   T_k[i,j] = ∫ φ_k ∇φ_i·∇φ_j dx,

and the stored tensor T (/operators/stiffness_*) reproduces the solver's matrix to rounding,
so a physics-informed loss ‖K(m)u − F‖ needs no dolfinx and no quadrature choice. For P1 on
triangles ∇φ_i·∇φ_j is constant per cell, so T_k = (1/3) × the element stiffness on each cell
containing vertex k, computed exactly in closed form. With the sources' prior the model checks at
construction that T equals the sources' own tensor (`prestiffness_n12.npz`) after the dof mapping,
which holds only for the same triangulation (the "right" diagonal), and that the Dirichlet dofs are
the sources' 28.

Observations (`sensors`): "sources": u at the sources' 10 observed dofs (two on the insulated
edge); "random": u at `n_sensors` points drawn once, uniformly on [0.1, 0.9]², from
numpy.random.default_rng(sensor_seed). Either way B u with the P1 observation matrix B
(barycentric coordinates; /operators/observation_*, /geometry/sensor_points). Noise: Gaussian,
independent, standard deviation noise_level × s(B u) of that sample, where s is the standard
deviation of the sample's observation values about their mean (`noise_reference` "std", the
sources' data_generate notebook: y + 0.05·std(y)·N(0, I)) or their root mean square ("rms").
/observations_clean is B u without noise. Per sample the rng gives first z (n_modes normals),
then the noise (n_sensors normals).

Parallelism: a sample is small (2-D, direct solve), so the mesh always lives on MPI.COMM_SELF
and samples are distributed over processes by the driver; with a larger `comm` every rank
computes the same sample (identical rows), which keeps files independent of process counts.
"""
from pathlib import Path

import numpy as np
import scipy.sparse
import ufl
from mpi4py import MPI

from pde_data import fem, heat_sources
from common.errors import ConfigError
from pde_data.forward_model import BaseForwardModel
from pde_data.heat_sources import SourcesPrior, dof_permutation
from pde_data.heat_sources import read as read_source
from pde_data.priors import BiLaplacianPrior, KLExpansion, mass_matrix

SENSOR_BOX = (0.1, 0.9)
REPOSITORY_NOTE = f"{heat_sources.REPOSITORY} at {heat_sources.COMMIT[:12]}"

_COMMON = {
    "prior": "sources",
    "sensors": "sources",
    "noise_reference": "std",
    "insulated_edge": "right",
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


CHOICES = {"prior": ("sources", "bilaplacian"), "sensors": ("sources", "random"),
           "noise_reference": ("std", "rms"), "insulated_edge": ("right", "top")}


def dirichlet_marker(insulated_edge):
    """The marker of the three Dirichlet sides: all but x = 1 ("right") or y = 1 ("top")."""
    axis = {"right": 0, "top": 1}[insulated_edge]

    def marker(x):
        return np.isclose(x[0], 0.0) | np.isclose(x[1], 0.0) | np.isclose(x[1 - axis], 1.0)
    return marker


def noise_scale(clean, reference):
    """The noise standard deviation per sample (rows of ``clean``, divided by noise_level): the
    standard deviation of the sample's observations about their mean ("std", population form) or
    their root mean square ("rms")."""
    clean = np.asarray(clean)
    if reference == "std":
        return clean.std(axis=-1)
    return np.sqrt((clean ** 2).mean(axis=-1))


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
    # paper: the sources' pool size plus 500 test samples (the heat problem tests on the last 500 rows)
    presets = {"paper": dict(_COMMON, n_samples=10500), "smoke": dict(_COMMON, n_samples=200)}

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
        for key, allowed in CHOICES.items():
            if settings[key] not in allowed:
                fail(key, "one of " + ", ".join(allowed))
        sources = {"mesh_n": 9, "n_modes": 12} if settings["prior"] == "sources" else {}
        sources.update({"mesh_n": 9, "n_sensors": 10} if settings["sensors"] == "sources" else {})
        for key, value in sources.items():
            if settings[key] != value:
                fail(key, f"{value} with the sources' prior and sensors")

    def __init__(self, settings, comm=MPI.COMM_SELF):
        self.settings = dict(settings)
        self.comm = comm
        s = self.settings
        self.mesh = fem.unit_square_diagonal(MPI.COMM_SELF, s["mesh_n"], "right")
        self.space = V = fem.scalar_space(self.mesh)
        self.n_dofs = fem.n_global_dofs(V)
        self.mass = mass_matrix(V)
        self.conductivity = fem.function(V, "conductivity")
        self.state = fem.function(V, "temperature")
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self.a = fem.form(self.conductivity * ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
        self.L = fem.form(float(s["source"]) * v * ufl.dx)
        marker = dirichlet_marker(s["insulated_edge"])
        self.dirichlet_dofs = np.sort(fem.boundary_dofs(V, marker)).astype(np.int64)
        self.solver = fem.LinearSolver(self.a, self.L, [fem.dirichlet_bc(V, marker, 0.0)], comm=MPI.COMM_SELF)
        needs_sources = "sources" in (s["prior"], s["sensors"])
        self.sources = SourcesPrior.load() if needs_sources else None
        # from_dolfin[j]: the DOLFIN 2019 dof at our dof j
        self.from_dolfin = dof_permutation(self.sources.coordinates, fem.dof_coordinates(V)) if needs_sources else None
        if needs_sources:
            self._check_sources_mesh()
        self.prior, self.kl = self._prior()
        self.sensor_points = self._sensor_points()
        evaluator = fem.PointEvaluator(V, self.sensor_points, MPI.COMM_SELF)
        rows, cols, values = evaluator.p1_matrix()
        self.B = scipy.sparse.csr_matrix((values, (rows, cols)), shape=(len(self.sensor_points), self.n_dofs))

    def _prior(self):
        """(BiLaplacianPrior or None, KLExpansion) of the `prior` setting."""
        s = self.settings
        if s["prior"] == "sources":
            modes = self.sources.E[self.from_dolfin]
            return None, KLExpansion(np.zeros(self.n_dofs), self.sources.sigma ** 2, modes)
        prior = BiLaplacianPrior.from_correlation(
            self.space, s["prior_correlation_length"], s["prior_std"], s["prior_mean"], s["prior_robin"])
        return prior, prior.kl(s["n_modes"])

    def _sensor_points(self):
        """The sources' observed dofs' coordinates, or `n_sensors` seeded uniform points."""
        s = self.settings
        if s["sensors"] == "sources":
            return self.sources.coordinates[self.sources.obs_dofs]
        return np.random.default_rng(s["sensor_seed"]).uniform(*SENSOR_BOX, size=(s["n_sensors"], 2))

    def _check_sources_mesh(self):
        """ConfigError unless this mesh is the sources' one: the weighted stiffness tensor in DOLFIN
        2019's numbering must equal their `prestiffness` P (the same triangles, i.e. the same
        diagonal) and the Dirichlet dofs their 28 (the insulated edge x = 1)."""
        rows, cols, k, values = weighted_stiffness_tensor(self.space)
        p, n = self.from_dolfin, self.n_dofs
        ours = scipy.sparse.csr_matrix((values, (p[rows] * n + p[cols], p[k])), shape=(n * n, n))
        theirs = read_source("prestiffness")
        if abs(ours - theirs).max() > 1e-12 * abs(theirs).max():
            raise ConfigError("the mesh does not match the sources' UnitSquareMesh(9, 9) (diagonal 'right')")
        if self.settings["insulated_edge"] == "right" and not np.array_equal(
                np.sort(p[self.dirichlet_dofs]), np.sort(self.sources.dirichlet)):
            raise ConfigError("the Dirichlet dofs differ from the sources' 28")

    def layout(self):
        """Row widths of the per-sample datasets."""
        n_obs = len(self.sensor_points)
        return {"parameters": self.n_dofs, "observations": n_obs, "observations_clean": n_obs,
                "states": self.n_dofs, "latent": self.kl.n_modes}

    def state_of(self, m):
        """The FE state u (nodal values) for the nodal log-conductivity m."""
        self.conductivity.x.array[:] = np.exp(m)
        self.solver.solve(self.state)
        return self.state.x.array.copy()

    def solve(self, index, rng):
        """Sample `index`: z ~ N(0, I) then noise, both from `rng`; returns the rows."""
        z, m = self.kl.sample(rng)
        u = self.state_of(m)
        clean = self.B @ u
        noise_std = self.settings["noise_level"] * noise_scale(clean, self.settings["noise_reference"])
        noisy = clean + noise_std * rng.standard_normal(len(clean))
        return {"parameters": m, "observations": noisy, "observations_clean": clean,
                "states": u, "latent": z}

    def static_arrays(self):
        """Geometry for plots and the operators of a physics-informed loss (plain arrays)."""
        points = fem.dof_coordinates(self.space)
        t_rows, t_cols, t_k, t_values = weighted_stiffness_tensor(self.space)
        b = self.B.tocoo()
        mass = self.mass.tocoo()
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
        sides = {"right": ("x=0, y=0, y=1", "x=1"), "top": ("x=0, x=1, y=0", "y=1")}[s["insulated_edge"]]
        sensors = (f"the sources' observed dofs {self.sources.obs_dofs.tolist()} (DOLFIN 2019 numbering)"
                   if s["sensors"] == "sources" else
                   f"uniform on {list(SENSOR_BOX)}^2 from default_rng(sensor_seed)")
        out = {
            "equation": "-div(exp(m) grad u) = f on (0,1)^2",
            "discretization": "P1 on mesh_n x mesh_n squares, each cut into 2 triangles (diagonal 'right')",
            "boundary": f"u = 0 on {sides[0]}; insulated (zero flux) on {sides[1]}",
            "source": s["source"],
            "conductivity": "P1 interpolant of exp(m): K(m) = sum_k exp(m_k) T_k",
            "noise_level": s["noise_level"],
            "noise_model": f"N(0, (noise_level * {s['noise_reference']}(clean observations of the sample))^2) iid",
            "sensor_layout": sensors,
            "units": "nondimensional",
            "n_dofs": self.n_dofs,
        }
        if self.prior is None:
            out["prior"] = (f"the sources' m = E Sigma z, z ~ N(0, I_12) ({REPOSITORY_NOTE}); "
                            "kl_modes = E (rows mapped by coordinates), kl_eigenvalues = Sigma^2")
        else:
            out.update(prior="BiLaplacian N(prior_mean, (delta - gamma Laplacian)^-2), truncated KL",
                       prior_gamma=self.prior.gamma, prior_delta=self.prior.delta)
        return out

    def dataset_attributes(self):
        """Shapes and meanings of the sparse operators."""
        n, n_obs = self.n_dofs, len(self.sensor_points)
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
            "operators/kl_modes": {"meaning": "m = prior_mean + modes @ (sqrt(kl_eigenvalues) * latent); "
                                              "M-orthonormal (BiLaplacian) or orthonormal (sources' E)"},
        }

    def export_xdmf(self, directory, index, rows):
        """Write m and u of sample `index` as P1 functions to DIRECTORY/heat_<index>.xdmf."""
        parameter = fem.function(self.space, "m")
        parameter.x.array[:] = rows["parameters"]
        state = fem.function(self.space, "u")
        state.x.array[:] = rows["states"]
        Path(directory).mkdir(parents=True, exist_ok=True)
        fem.write_xdmf(Path(directory) / f"heat_{index:06d}.xdmf", self.mesh, [parameter, state])
