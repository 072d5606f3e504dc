"""Wind over terrain: the mass-consistent diagnostic wind model (Sasaki's variational adjustment).

Given a first guess u0 [m/s], find the velocity u closest to it in the weighted norm
∫ (u − u0)·A(u − u0), A = diag(α_h², α_h², α_v²) (Gauss precision moduli, dimensionless),
subject to ∇·u = 0 in Ω and u·n = 0 on the terrain. The Euler–Lagrange equations give
u = u0 + A⁻¹∇λ with the Lagrange multiplier λ [m²/s] solving

    −∇·(A⁻¹∇λ) = ∇·u0  in Ω,   λ = 0 on the open boundaries (lateral faces, top),

weakly: ∫ A⁻¹∇λ·∇v = −∫ u0·∇v for every v vanishing on the open boundaries. The terrain carries
the form's natural condition (A⁻¹∇λ + u0)·n = u·n = 0: no flow through the ground.

Discretization: Ω = the box above the terrain, a tetrahedral mesh mapped vertically (terrain
following); λ ∈ P1; u0 enters through its nodal P1 interpolant u0_h, so the right-hand side is a
fixed linear map of u0_h and on flat terrain u0_h is itself exactly divergence-free (λ = 0). The
stiffness matrix does not depend on the sample: it is assembled, and the AMG hierarchy of the
CG + BoomerAMG solver built, once per dataset. The stored velocity is the continuous P1 field
u_h = u0_h + A⁻¹ G λ, G the mass-lumped L2 projection of ∇λ onto P1 (gradient recovery); the
discrete divergence vanishes (to solver tolerance) for u0_h + A⁻¹∇λ, while the recovered u_h is
divergence-free only up to its O(h) recovery error.

Per sample (drawn from the sample's rng): the first guess is the neutral logarithmic
boundary-layer profile u0 = U ln(1 + z'/z0)/ln(1 + z_ref/z0)·(cos θ, sin θ, 0), z' = height above
ground [m], U [m/s] the speed at the reference height z_ref, θ [degrees] the direction the wind
blows towards (counterclockwise from the x axis = east), z0 [m] the roughness length.
U and θ are uniform in their ranges, z0 log-uniform.

Rows: `parameters` = u_h at a uniform grid in terrain-following coordinates (grid_shape
(nx, ny, nz): horizontal cell centres, heights above ground grid_top·(k+1)/nz), point-major
(u, v, w) per point; `observations(_clean)` = u_h (3 components) at `n_sensors` masts of height
sensor_height, plus N(0, noise_std²) noise [m/s]; `latent` = (U, θ, z0); `divergence` = the
RMS discrete divergence [1/s] of u = u0_h + A⁻¹∇λ and of u0_h (see `_divergence`); `iterations` =
the AMG-CG iteration count.
"""
import os

import numpy as np
import scipy.sparse
import ufl
from mpi4py import MPI

from pde_data import fem
from common.errors import ConfigError, UserError
from pde_data.forward_model import BaseForwardModel
from pde_data.terrain import gaussian_hills, read_asc

_COMMON = {
    "terrain_file": "",          # ESRI ASCII (.asc) elevations; "" = Gaussian hills below
    "length_x": 3000.0,          # m, site extent (hills only; a terrain file sets its own)
    "length_y": 3000.0,
    "n_hills": 3,
    "hill_height": 150.0,        # m, largest hill amplitude
    "hill_width": 300.0,         # m, largest hill standard deviation
    "terrain_seed": 0,
    "domain_height": 1000.0,     # m, flat top of the domain above the lowest terrain point
    "vertical_grading": 2.0,     # layer k of nz sits at height (k/nz)^grading of the column
    "alpha_h": 1.0,              # Gauss precision moduli (neutral stability: alpha_v = alpha_h)
    "alpha_v": 1.0,
    "speed_range": [3.0, 15.0],        # m/s at reference_height
    "direction_range": [0.0, 360.0],   # degrees, counterclockwise from east, blowing towards
    "roughness_range": [0.01, 0.5],    # m, log-uniform
    "reference_height": 10.0,    # m
    "grid_top": 200.0,           # m above ground of the highest grid level
    "sensor_height": 10.0,       # m above ground (10 m masts)
    "sensor_seed": 1,
    "noise_std": 0.25,           # m/s, per velocity component
    "solver_rtol": 1e-10,
}


class ForwardModel(BaseForwardModel):
    """The wind dataset: adjusted velocity on a terrain-following grid from sparse masts."""

    name = "wind"
    input_files = ("terrain_file",)
    presets = {
        "smoke": dict(_COMMON, n_samples=200, mesh_shape=[12, 12, 8], grid_shape=[8, 8, 4],
                      n_sensors=10),
        "paper": dict(_COMMON, n_samples=2000, mesh_shape=[40, 40, 16], grid_shape=[16, 16, 8],
                      n_sensors=10),
    }

    @classmethod
    def check(cls, settings):
        """Refuse invalid settings with a ConfigError naming the key."""
        def require(key, ok, what):
            if not ok:
                raise ConfigError(f"invalid value {settings[key]!r} for setting '{key}' ({what})")

        for key in ("mesh_shape", "grid_shape"):
            shape = settings[key]
            require(key, isinstance(shape, list) and len(shape) == 3
                    and all(isinstance(n, int) and n >= 1 for n in shape), "three integers >= 1")
        for key in ("speed_range", "direction_range", "roughness_range"):
            r = settings[key]
            require(key, isinstance(r, list) and len(r) == 2
                    and all(isinstance(v, (int, float)) for v in r) and r[0] <= r[1], "[low, high]")
        require("speed_range", settings["speed_range"][0] > 0, "speeds must be positive")
        require("roughness_range", settings["roughness_range"][0] > 0, "roughness must be positive")
        for key in ("length_x", "length_y", "hill_width", "domain_height", "alpha_h", "alpha_v",
                    "reference_height", "grid_top", "sensor_height"):
            require(key, settings[key] > 0, "must be positive")
        for key in ("hill_height", "noise_std", "n_hills"):
            require(key, settings[key] >= 0, "must be >= 0")
        require("n_sensors", settings["n_sensors"] >= 1, "must be >= 1")
        require("vertical_grading", settings["vertical_grading"] >= 1, "must be >= 1")
        require("solver_rtol", 0 < settings["solver_rtol"] < 1, "must be in (0, 1)")
        top = settings["domain_height"] - _terrain(settings).max_height
        for key in ("grid_top", "sensor_height"):
            require(key, settings[key] < top, f"must be below the domain top, {top:g} m above "
                    "the highest terrain point")

    def __init__(self, settings, comm=MPI.COMM_SELF):
        s = self.settings_ = dict(settings)
        self.comm = comm
        self.terrain = _terrain(s)
        self.mesh = terrain_following_mesh(comm, self.terrain, s["mesh_shape"],
                                           s["domain_height"], s["vertical_grading"])
        S = self.S = fem.scalar_space(self.mesh, 1)
        V = self.V = fem.vector_space(self.mesh, 1)
        if not np.array_equal(S.tabulate_dof_coordinates(), V.tabulate_dof_coordinates()):
            raise RuntimeError("scalar and vector P1 spaces number their nodes differently")
        self.n_owned = len(fem.dof_coordinates(S))

        # the first guess's shape: height above ground of every local node (ghosts included)
        x = S.tabulate_dof_coordinates()
        self.height = np.maximum(x[:, 2] - self.terrain(x[:, 0], x[:, 1]), 0.0)

        Ainv = ufl.diag(ufl.as_vector([1.0 / s["alpha_h"] ** 2] * 2 + [1.0 / s["alpha_v"] ** 2]))
        lam, v = ufl.TrialFunction(S), ufl.TestFunction(S)
        w = ufl.TestFunction(V)
        self.u0 = fem.function(V, "u0")            # m/s
        self.lam = fem.function(S, "lambda")       # m²/s
        self.u = fem.function(V, "u")              # m/s, recovered P1 velocity
        dx = ufl.dx(metadata={"quadrature_degree": 2})
        open_boundary = _open_boundary_marker(self.terrain, s["domain_height"])
        bc = fem.dirichlet_bc(S, open_boundary)
        self.solver = fem.LinearSolver(
            fem.form(ufl.inner(ufl.dot(Ainv, ufl.grad(lam)), ufl.grad(v)) * dx),
            fem.form(-ufl.inner(self.u0, ufl.grad(v)) * dx), [bc],
            petsc_options=dict(fem.iterative_options(True, s["solver_rtol"]),
                               pc_hypre_boomeramg_strong_threshold=0.5),
            comm=comm)
        self.solver.assemble()
        # gradient recovery: (A⁻¹Gλ)_i = ∫ A⁻¹∇λ·w_i / ∫ w_i, one matrix product per sample
        self.recovery = fem.assemble_petsc_matrix(
            fem.form(ufl.inner(ufl.dot(Ainv, ufl.grad(lam)), w) * dx))
        self.lumped_mass_V = fem.assemble_vector_array(
            fem.form(ufl.inner(ufl.as_vector([1.0, 1.0, 1.0]), w) * dx))
        lumped_mass_S = fem.assemble_vector_array(fem.form(v * dx))
        constrained = np.ones(self.n_owned, dtype=bool)
        open_dofs = fem.boundary_dofs(S, open_boundary)
        constrained[open_dofs[open_dofs < self.n_owned]] = False
        self.divergence_weight = np.where(constrained, 1.0 / lumped_mass_S, 0.0)
        self.constrained_volume = comm.allreduce(float(lumped_mass_S[constrained].sum()), MPI.SUM)

        self.grid_points = terrain_following_grid(S, s["grid_shape"], s["grid_top"],
                                                  self.terrain, comm)
        self.sensor_points = sensor_masts(S, s["n_sensors"], s["sensor_height"],
                                          s["sensor_seed"], self.terrain, comm)
        self.points = np.vstack([self.grid_points, self.sensor_points])
        rows, cols, values = fem.PointEvaluator(S, self.points, comm).p1_matrix()
        self.sampling = scipy.sparse.csr_matrix(
            (values, (rows, cols)), shape=(len(self.points), len(x)))

    # --- contract -----------------------------------------------------------------------------

    def layout(self):
        n_grid, n_sensors = len(self.grid_points), len(self.sensor_points)
        return {"parameters": 3 * n_grid, "observations": 3 * n_sensors,
                "observations_clean": 3 * n_sensors, "latent": 3, "divergence": 2,
                "iterations": 1}

    def static_arrays(self):
        nx, ny = self.settings_["mesh_shape"][:2]
        gx, gy = np.meshgrid(np.linspace(0, self.terrain.length_x, nx + 1),
                             np.linspace(0, self.terrain.length_y, ny + 1), indexing="ij")
        terrain = np.column_stack([gx.ravel(), gy.ravel(), self.terrain(gx, gy).ravel()])
        return {"geometry/parameter_points": self.grid_points,
                "geometry/sensor_points": self.sensor_points,
                "geometry/terrain": terrain}

    def attributes(self):
        s = self.settings_
        return {
            "equation": "u = u0 + A^-1 grad(lambda), -div(A^-1 grad lambda) = div u0, lambda = 0 on "
                        "lateral faces and top, u.n = 0 on the terrain; A = diag(ah^2, ah^2, av^2)",
            "first_guess": "u0 = U ln(1 + z'/z0) / ln(1 + z_ref/z0) (cos theta, sin theta, 0), "
                           "z' = height above ground",
            "terrain": self.terrain.description,
            "terrain_base_elevation_m": self.terrain.base_elevation,
            "domain_m": [self.terrain.length_x, self.terrain.length_y, s["domain_height"]],
            "alpha_h": s["alpha_h"], "alpha_v": s["alpha_v"],
            "speed_range_m_per_s": s["speed_range"], "direction_range_deg": s["direction_range"],
            "roughness_range_m": s["roughness_range"], "reference_height_m": s["reference_height"],
            "sensor_height_m": s["sensor_height"], "noise_std_m_per_s": s["noise_std"],
            "n_cells": self.mesh.topology.index_map(3).size_global,
            "n_dofs": fem.n_global_dofs(self.S),
        }

    def dataset_attributes(self):
        return {
            "geometry/parameter_points": {"grid_shape": list(self.settings_["grid_shape"])},
            "geometry/terrain": {"grid_shape": [n + 1 for n in self.settings_["mesh_shape"][:2]],
                                 "columns": "x, y, h [m]"},
            "latent": {"columns": "U [m/s], theta [deg], z0 [m]"},
            "divergence": {"columns": "rms discrete divergence of u, of u0 [1/s]"},
            "iterations": {"columns": "AMG-CG iterations"},
        }

    def solve(self, index, rng):
        s = self.settings_
        speed = rng.uniform(*s["speed_range"])
        direction = rng.uniform(*s["direction_range"])
        roughness = np.exp(rng.uniform(*np.log(s["roughness_range"])))
        iterations = self.solve_fields(speed, direction, roughness)
        values = self.evaluate(self.u)
        n_grid = len(self.grid_points)
        clean = values[n_grid:].ravel()
        return {"parameters": values[:n_grid].ravel(),
                "observations_clean": clean,
                "observations": clean + s["noise_std"] * rng.standard_normal(clean.size),
                "latent": np.array([speed, direction, roughness]),
                "divergence": self.divergence(),
                "iterations": np.array([float(iterations)])}

    def export_xdmf(self, directory, index, rows):
        self.solve_fields(*rows["latent"])
        fem.write_xdmf(os.path.join(directory, f"wind_{index:06d}.xdmf"), self.mesh,
                       [self.u, self.u0, self.lam])

    # --- the model ----------------------------------------------------------------------------

    def solve_fields(self, speed, direction, roughness):
        """Set the log-profile first guess from (U [m/s], θ [deg], z0 [m]) and adjust it; returns
        the CG iteration count."""
        s = self.settings_
        profile = speed * np.log1p(self.height / roughness) / np.log1p(s["reference_height"] / roughness)
        theta = np.deg2rad(direction)
        u0 = self.u0.x.array.reshape(-1, 3)
        u0[:, 0], u0[:, 1], u0[:, 2] = profile * np.cos(theta), profile * np.sin(theta), 0.0
        return self.adjust()

    def adjust(self):
        """Solve for λ given the first guess in `self.u0` and recover u_h = u0_h + A⁻¹Gλ into
        `self.u`; returns the CG iteration count (raises SolverFailure if CG fails)."""
        iterations = self.solver.solve(self.lam, assemble_matrix=False)
        self.recovery.mult(fem.petsc_vector(self.lam), fem.petsc_vector(self.u))
        n = 3 * self.n_owned
        u = self.u.x.array
        u[:n] = self.u0.x.array[:n] + u[:n] / self.lumped_mass_V
        self.u.x.scatter_forward()
        return iterations

    def evaluate(self, u):
        """Values (n_points, 3) of the vector P1 function `u` at grid points then sensors, on
        every rank (each point is owned by one rank; the others add zeros)."""
        local = self.sampling @ u.x.array.reshape(-1, 3)
        values = np.empty_like(local)
        self.comm.Allreduce(local, values, op=MPI.SUM)
        return values

    def divergence(self):
        """RMS discrete divergence [1/s] of u = u0_h + A⁻¹∇λ and of u0_h.

        The discrete divergence of a velocity w is the P1 field with nodal values
        d_i = −∫ w·∇φ_i / ∫ φ_i at the nodes i off the open boundaries: the mass-lumped weak form
        of "∇·w = 0 in Ω and w·n = 0 on the terrain", which the model enforces exactly (up to
        the solver tolerance); its RMS is (Σ_i ∫φ_i d_i² / Σ_i ∫φ_i)^½.
        """
        def rms(residual):
            local = float(np.sum(residual ** 2 * self.divergence_weight))
            return np.sqrt(self.comm.allreduce(local, MPI.SUM) / self.constrained_volume)

        b, K = self.solver.b, self.solver.A  # b_i = −∫ u0_h·∇φ_i, (Kλ)_i = ∫ A⁻¹∇λ·∇φ_i
        residual = b.duplicate()
        K.mult(fem.petsc_vector(self.lam), residual)
        residual.aypx(-1.0, b)               # −∫ (u0_h + A⁻¹∇λ)·∇φ_i off the open boundary
        values = np.array([rms(residual.getArray()), rms(b.getArray())])
        residual.destroy()
        return values


def _terrain(settings):
    """The settings' terrain: the `.asc` file when given, else the Gaussian hills."""
    if settings["terrain_file"]:
        try:
            return read_asc(settings["terrain_file"])
        except UserError as error:
            raise ConfigError(f"setting 'terrain_file': {error}") from None
    return gaussian_hills(settings["length_x"], settings["length_y"], settings["n_hills"],
                          settings["hill_height"], settings["hill_width"], settings["terrain_seed"])


def terrain_following_mesh(comm, terrain, shape, height, grading):
    """Tetrahedral mesh of {0<x<Lx, 0<y<Ly, h(x,y)<z<H}: a box mesh of [0,Lx]×[0,Ly]×[0,1]
    (6 tetrahedra per cube) with every node moved vertically, z = h + (H − h)·ζ^grading. Each
    tetrahedron keeps its vertices in one column of the box, so the ground is the piecewise
    linear interpolant of h on the (nx+1)×(ny+1) node grid and the lateral faces stay vertical."""
    nx, ny, nz = shape
    mesh = fem.box(comm, [0.0, 0.0, 0.0], [terrain.length_x, terrain.length_y, 1.0], nx, ny, nz)
    x = mesh.geometry.x
    h = terrain(x[:, 0], x[:, 1])
    x[:, 2] = h + (height - h) * x[:, 2] ** grading
    return mesh


def _open_boundary_marker(terrain, height):
    """Marker of the open boundaries: the four lateral faces and the top z = H."""
    tol = 1e-9 * max(terrain.length_x, terrain.length_y, height)

    def marker(x):
        return (np.isclose(x[0], 0.0, atol=tol) | np.isclose(x[0], terrain.length_x, atol=tol)
                | np.isclose(x[1], 0.0, atol=tol) | np.isclose(x[1], terrain.length_y, atol=tol)
                | np.isclose(x[2], height, atol=tol))
    return marker


def mesh_ground(space, terrain, xy, comm):
    """The mesh's ground height [m] (the P1 interpolant of h) at horizontal points `xy` (n, 2).

    Every tetrahedron projects onto a ground triangle of its column, so the P1 function with
    nodal values h(x_i, y_i) equals the mesh's ground height anywhere in the column; it is
    evaluated just below the flat top."""
    x = space.tabulate_dof_coordinates()
    ground = fem.function(space)
    ground.x.array[:] = terrain(x[:, 0], x[:, 1])
    top = comm.allreduce(float(x[:, 2].max()), MPI.MAX)
    probe = np.column_stack([xy, np.full(len(xy), top * (1 - 1e-9))])
    return fem.PointEvaluator(space, probe, comm).evaluate(ground)


def terrain_following_grid(space, shape, grid_top, terrain, comm):
    """Points (nx·ny·nz, 3) of the uniform terrain-following grid, C order over (i, j, k):
    x_i = (i + ½)Lx/nx, y_j = (j + ½)Ly/ny, z = ground(x_i, y_j) + grid_top·(k + 1)/nz."""
    nx, ny, nz = shape
    xs = (np.arange(nx) + 0.5) * terrain.length_x / nx
    ys = (np.arange(ny) + 0.5) * terrain.length_y / ny
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    ground = mesh_ground(space, terrain, np.column_stack([gx.ravel(), gy.ravel()]), comm)
    heights = grid_top * (np.arange(nz) + 1.0) / nz
    return np.column_stack([np.repeat(gx.ravel(), nz), np.repeat(gy.ravel(), nz),
                            (ground[:, None] + heights[None, :]).ravel()])


def sensor_masts(space, n_sensors, mast_height, seed, terrain, comm):
    """Points (n_sensors, 3): mast tops `mast_height` m above the mesh ground at horizontal
    positions drawn uniformly from the middle 80 % of the site with `seed`."""
    xy = np.random.default_rng(seed).uniform(0.1, 0.9, size=(n_sensors, 2)) * [
        terrain.length_x, terrain.length_y]
    return np.column_stack([xy, mesh_ground(space, terrain, xy, comm) + mast_height])
