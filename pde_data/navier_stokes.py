"""2-D incompressible Navier–Stokes on the unit torus: initial vorticity -> vorticity at time T.

The equations (vorticity–streamfunction form; x in units of the torus length L = 1, t in units of
a time scale t0, ω in 1/t0, ν in L²/t0):

    ∂_t ω + v·∇ω = ν Δω + f,   −Δψ = ω (ψ of zero mean),   v = (∂ψ/∂y, −∂ψ/∂x),   ω(·,0) = ω0,

periodic in x and y, with the usual benchmark's data (Li et al., Fourier neural operator):
ν = 1e-3, f = A (sin 2π(x+y) + cos 2π(x+y)) with A = 0.1, ω0 ~ N(0, 7^{3/2} (−Δ + 49 I)^{−2.5})
(`pde_data.periodic.TorusGaussianPrior`, zero mean mode). The dataset pairs ω0 (the parameter) with
ω(·,T) plus noise (the observation) on a uniform grid.

Discretization. Continuous P1 elements on the mesh_n x mesh_n right-diagonal triangulation of the
unit square, made periodic in both directions by a dolfinx_mpc constraint (`fem.periodic_unit_square`);
the dofs are then exactly the mesh_n x mesh_n grid of the torus. With M, K the periodic mass and
stiffness matrices, F_i = ∫ f φ_i and the advection vector N(ψ, ω)_i = ∫ (v·∇ω) φ_i dx, each step
of length Δt is Crank–Nicolson for diffusion and Adams–Bashforth 2 for advection:

    K ψ^n = M ω^n (ψ pinned to 0 at the origin: the singular periodic Laplacian's constant),
    (M/Δt + ν K/2) ω^{n+1} = (M/Δt − ν K/2) ω^n − (3/2 N^n − 1/2 N^{n−1}) + F   (N^{−1} := N^0).

The two matrices are assembled and LU-factorized once per dataset; a step costs two
back-substitutions (ψ, ω), one vector assembly (N^n) and two sparse matrix–vector products.
Accuracy: O(h² + Δt²) in L² (tests: Taylor–Green vortex, and a pseudo-spectral reference).
The mean of ω is conserved exactly (v = ∇^⊥ψ_h is divergence-free with continuous normal
component, so ∫ (v·∇ω) dx = 0, and the constant is a test function; f and ω0 have zero mean), and
the Galerkin advection is skew: ∫ (v·∇ω) ω dx = 0, so with ν = 0 and f = 0 the enstrophy
½ ωᵀMω changes only by the time-stepping error.

Stability. The advection is stabilized by keeping it energy-neutral (the skew Galerkin form above:
it adds no spurious growth in space, and CN damps the high wavenumbers when ν > 0) and by the
Courant restriction that AB2 needs, Co = Δt max|v| / h ≤ `cfl` (h = 1/mesh_n; measured on a
32 x 32 mesh with strong flow, max|v| ≈ 2: stable at Co = 0.32 and unstable at 0.64 with
ν = 1e-3, stable at 0.16 and unstable at 0.32 with ν = 0; hence the default cfl = 0.15. Explicit
streamline diffusion was tried and dropped: it lowers the stable Co to below 0.16 even with
ν = 1e-3, being an explicit diffusion of strength ~ h|v|). `check` refuses a Δt that violates it for the velocity bound
4 sqrt(E|v0|²) + A T / (2π) (4 standard deviations of the prior's velocity, plus the velocity the
forcing can add up to time T); `solve` re-checks the actual max|v| every `CHECK_EVERY` steps and
reports a sample that exceeds it as a SolverFailure (status 2) instead of running into a blow-up.

Why T = 1 by default. Diffusion multiplies the Fourier mode k by e^{−4π²|k|²νT}; at T = 1 this is
≥ 0.02 for |k| ≤ 10, so every mode that the prior excites above the noise survives and ω0 stays
recoverable: the inverse map is stable and learnable. The forcing response grows with T and
swamps ω0 (measured, default prior: ω0 is 32 % of the RMS of ω(T) at T = 1, 8 % at T = 5, 5 % at
T = 10), and the 1 % noise is relative to ω(T); for T ≈ 50 (Li et al.'s setting) ω(T) is the
forced flow and ω0 is lost. The prior's flow is slow (RMS |v| ≈ 0.006), so the map is mildly
nonlinear: the advective part of ω(T) (against the exact linear, advection-free solution) is
1.0 % of ω(T) at T = 1 (2.6 % at T = 5). The P1 discretization error of the paper preset against
a pseudo-spectral solution is 0.2 % of ω(T), below the noise.

Samples are solved on one process each (`MPI.COMM_SELF`; the driver distributes samples).
"""
from pathlib import Path

import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from pde_data import fem
from common.errors import ConfigError, SolverFailure
from pde_data.forward_model import BaseForwardModel
from pde_data.periodic import TorusGaussianPrior, refine

CHECK_EVERY = 10  # steps between Courant-number checks during a run
VELOCITY_STDS = 4.0  # the prior velocity bound used by `check`, in standard deviations

_COMMON = dict(viscosity=1e-3, final_time=1.0, forcing_amplitude=0.1, prior_tau=7.0,
               prior_alpha=2.5, prior_scale=7.0 ** 1.5, noise_level=0.01, n_sensors=0,
               sensor_seed=0, cfl=0.15)


def forcing_formula(amplitude):
    """The forcing as a readable formula (a dataset attribute)."""
    return f"{amplitude:g}*(sin(2*pi*(x+y)) + cos(2*pi*(x+y)))"


class ForwardModel(BaseForwardModel):
    """ω0 on a grid -> ω(·, T) on the same grid (plus noise), by the P1 / CN–AB2 scheme above."""

    name = "navier_stokes"
    presets = {
        "paper": dict(_COMMON, n_samples=5000, mesh_n=64, grid_n=32, dt=0.01),
        "smoke": dict(_COMMON, n_samples=200, mesh_n=16, grid_n=16, dt=0.02),
    }

    @classmethod
    def check(cls, settings):
        """Refuse invalid values with one line naming the key (ConfigError)."""
        s = settings

        def fail(key, requirement):
            raise ConfigError(f"setting '{key}' must be {requirement}, got {s[key]!r}")

        for key, value in s.items():
            if isinstance(value, float) and not np.isfinite(value):
                fail(key, "finite")
        if s["mesh_n"] < 4:
            fail("mesh_n", "an integer >= 4")
        if s["grid_n"] < 2 or s["mesh_n"] % s["grid_n"]:
            fail("grid_n", f"an integer >= 2 dividing mesh_n = {s['mesh_n']}")
        if s["viscosity"] < 0:
            fail("viscosity", "non-negative")
        if s["final_time"] <= 0:
            fail("final_time", "positive")
        if s["dt"] <= 0:
            fail("dt", "positive")
        n_steps = round(s["final_time"] / s["dt"])
        if n_steps < 1 or abs(n_steps * s["dt"] - s["final_time"]) > 1e-9 * s["final_time"]:
            fail("dt", f"final_time / an integer (final_time = {s['final_time']})")
        for key in ("prior_tau", "prior_scale", "cfl"):
            if s[key] <= 0:
                fail(key, "positive")
        if s["prior_alpha"] <= 1:
            fail("prior_alpha", "> 1 (a continuous field in 2-D)")
        for key in ("noise_level", "sensor_seed"):
            if s[key] < 0:
                fail(key, "non-negative")
        if not 0 <= s["n_sensors"] <= s["grid_n"] ** 2:
            fail("n_sensors", f"in [0, grid_n² = {s['grid_n'] ** 2}] (0: the whole grid)")
        courant = s["dt"] * velocity_bound(s) * s["mesh_n"]
        if courant > s["cfl"]:
            raise ConfigError(
                f"setting 'dt' = {s['dt']!r} violates the CFL bound: Courant number "
                f"dt*max|v|*mesh_n = {courant:.3g} > cfl = {s['cfl']:g} (max|v| <= "
                f"{velocity_bound(s):.3g} expected); use dt <= {s['cfl'] / (velocity_bound(s) * s['mesh_n']):.3g}")

    def __init__(self, settings, comm=MPI.COMM_SELF):
        self.settings = s = dict(settings)
        self.comm = comm
        n = s["mesh_n"]
        self.n_steps = round(s["final_time"] / s["dt"])
        self.prior = TorusGaussianPrior(s["prior_tau"], s["prior_alpha"], s["prior_scale"])
        self.mesh = fem.unit_square(MPI.COMM_SELF, n)
        V = fem.scalar_space(self.mesh)
        self.constraint = fem.periodic_unit_square(V)
        self.space = W = fem.constrained_space(self.constraint)
        # grid index (i*n + j of the point (i/n, j/n)) of every dof, slaves included
        ij = np.rint(fem.dof_coordinates(V) * n).astype(np.int64) % n
        self.dof_grid = ij[:, 0] * n + ij[:, 1]
        self.masters = np.setdiff1d(np.arange(len(self.dof_grid)), fem.slave_dofs(self.constraint))
        self.grid_order = self.masters[np.argsort(self.dof_grid[self.masters])]
        self.pin_dof = self.grid_order[0]  # the dof at the origin
        self.cell_dofs, _, self.cell_gradients = fem.p1_simplex_geometry(V)

        self.omega, self.psi = fem.function(W, "vorticity"), fem.function(W, "streamfunction")
        u, w = ufl.TrialFunction(W), ufl.TestFunction(W)
        dt, nu = s["dt"], s["viscosity"]
        mass = fem.form(u * w * ufl.dx)
        stiffness = fem.form(ufl.inner(ufl.grad(u), ufl.grad(w)) * ufl.dx)
        self.M = fem.assemble_constrained_matrix(mass, self.constraint)
        K = fem.assemble_constrained_matrix(stiffness, self.constraint)
        self.implicit = combine(self.M, 1.0 / dt, K, 0.5 * nu)
        self.explicit = combine(self.M, 1.0 / dt, K, -0.5 * nu)
        pinned = fem.assemble_constrained_matrix(stiffness, self.constraint)
        pinned.zeroRowsColumns([self.pin_dof], diag=1.0)  # ψ(0) = 0 fixes the constant
        self.poisson = fem.factorized(pinned, MPI.COMM_SELF)
        self.stepper = fem.factorized(self.implicit, MPI.COMM_SELF)
        x = ufl.SpatialCoordinate(self.mesh)
        phase = 2 * ufl.pi * (x[0] + x[1])
        self.F = fem.assemble_constrained_vector(
            fem.form((ufl.sin(phase) + ufl.cos(phase)) * w * ufl.dx), self.constraint)
        self.F.scale(s["forcing_amplitude"])
        velocity = ufl.as_vector((self.psi.dx(1), -self.psi.dx(0)))
        self.advection = fem.form(ufl.dot(velocity, ufl.grad(self.omega)) * w * ufl.dx)
        self.N = [self.F.duplicate(), self.F.duplicate()]  # N^n, N^{n-1}
        self.rhs = self.F.duplicate()

    # --- the time stepper -------------------------------------------------------------------------

    def evolve(self, omega0):
        """ω(·, T) on the mesh_n x mesh_n grid from ω0 given there ((n, n) arrays, see
        `pde_data.periodic` for the grid convention). Raises SolverFailure when the Courant number
        exceeds `cfl` or the solution stops being finite."""
        self.omega.x.array[:] = np.asarray(omega0).ravel()[self.dof_grid]
        omega = fem.petsc_vector(self.omega)
        new, old = self.N
        for step in range(self.n_steps):
            self.streamfunction()
            if step % CHECK_EVERY == 0:
                self.check_courant(step)
            fem.assemble_constrained_vector(self.advection, self.constraint, new)
            self.explicit.mult(omega, self.rhs)
            self.rhs.maxpy([1.0, -1.5, 0.5], [self.F, new, new if step == 0 else old])
            self.stepper.solve(self.rhs, omega)
            fem.apply_constraint(self.constraint, omega)
            new, old = old, new
        values = self.omega.x.array[self.grid_order].copy()
        if not np.all(np.isfinite(values)):
            raise SolverFailure("navier_stokes: the vorticity is not finite at the final time")
        return values.reshape(self.settings["mesh_n"], -1)

    def streamfunction(self):
        """ψ from the current ω: K ψ = M ω with ψ = 0 at the origin (one back-substitution)."""
        rhs = self.rhs
        self.M.mult(fem.petsc_vector(self.omega), rhs)
        rhs.array[self.pin_dof] = 0.0
        psi = fem.petsc_vector(self.psi)
        self.poisson.solve(rhs, psi)
        fem.apply_constraint(self.constraint, psi)

    def max_velocity(self):
        """max over cells of |v| = |∇ψ| (exact for P1: ∇ψ is constant on each cell)."""
        psi = self.psi.x.array[self.cell_dofs]
        grad = np.einsum("cj,cjd->cd", psi, self.cell_gradients)
        with np.errstate(over="ignore", invalid="ignore"):  # a blown-up run gives inf/nan: refused
            return float(np.sqrt(np.max(np.sum(grad * grad, axis=1))))

    def check_courant(self, step):
        """Raise SolverFailure when Δt max|v| mesh_n > cfl (or is not finite)."""
        s = self.settings
        courant = s["dt"] * self.max_velocity() * s["mesh_n"]
        if not courant <= s["cfl"]:
            raise SolverFailure(f"navier_stokes: Courant number {courant:.3g} > cfl = {s['cfl']:g} "
                                f"at t = {step * s['dt']:.4g}")

    # --- the dataset contract ----------------------------------------------------------------------

    def grid_stride(self):
        """Mesh points per grid point along each axis (the grid is every stride-th mesh point)."""
        return self.settings["mesh_n"] // self.settings["grid_n"]

    def sensors(self):
        """Flat grid indices of the observed points: the whole grid, or `n_sensors` of its points
        drawn without replacement with `sensor_seed` (sorted)."""
        s = self.settings
        if s["n_sensors"] == 0:
            return np.arange(s["grid_n"] ** 2)
        rng = np.random.default_rng(s["sensor_seed"])
        return np.sort(rng.choice(s["grid_n"] ** 2, size=s["n_sensors"], replace=False))

    def layout(self):
        """Row widths: ω0 and ω(T) on the grid, the full P1 state on the mesh grid."""
        n_obs = len(self.sensors())
        return {"parameters": self.settings["grid_n"] ** 2, "observations": n_obs,
                "observations_clean": n_obs, "states": self.settings["mesh_n"] ** 2}

    def solve(self, index, rng):
        """Sample `index`: ω0 from the prior (2 grid_n² normals), evolve, observe, add noise
        (n_obs normals; std = noise_level x the RMS of the clean observations)."""
        s = self.settings
        omega0 = self.prior.sample_grid(rng, s["grid_n"])
        state = self.evolve(refine(omega0, s["mesh_n"]))
        stride = self.grid_stride()
        clean = state[::stride, ::stride].ravel()[self.sensors()]
        sigma = s["noise_level"] * np.sqrt(np.mean(clean ** 2))
        return {"parameters": omega0.ravel(), "observations_clean": clean,
                "observations": clean + sigma * rng.standard_normal(clean.size),
                "states": state.ravel()}

    def static_arrays(self):
        """Grid points (C order) of parameters, observations and states; the mesh for plots."""
        s = self.settings
        coordinates, cells = fem.mesh_arrays(self.mesh)
        return {"geometry/parameter_points": grid_points(s["grid_n"]),
                "geometry/observation_points": grid_points(s["grid_n"])[self.sensors()],
                "geometry/state_points": grid_points(s["mesh_n"]),
                "geometry/mesh_coordinates": coordinates,
                "geometry/mesh_cells": cells}

    def attributes(self):
        """The physical and numerical settings, readable without code."""
        s = self.settings
        return {"equation": "d_t w + v.grad w = nu Lap w + f, -Lap psi = w, v = (d_y psi, -d_x psi) "
                            "on the unit torus",
                "viscosity": s["viscosity"], "final_time": s["final_time"], "dt": s["dt"],
                "n_steps": self.n_steps, "forcing": forcing_formula(s["forcing_amplitude"]),
                "prior": self.prior.describe(), "noise_level": s["noise_level"],
                "noise": "additive N(0, (noise_level * RMS of the sample's clean observations)^2)",
                "discretization": f"P1 on a {s['mesh_n']}x{s['mesh_n']} periodic triangle mesh; "
                                  f"Crank-Nicolson diffusion, Adams-Bashforth-2 Galerkin advection, "
                                  f"Courant number <= {s['cfl']:g}",
                "parameter": "initial vorticity w(x, 0) at geometry/parameter_points",
                "observation": "w(x, final_time) + noise at geometry/observation_points",
                "state": "w(x, final_time) at geometry/state_points (the P1 dofs)"}

    def dataset_attributes(self):
        """grid_shape of the grids (and of the observations when they are the whole grid)."""
        s = self.settings
        attributes = {"geometry/parameter_points": {"grid_shape": (s["grid_n"], s["grid_n"])},
                      "geometry/state_points": {"grid_shape": (s["mesh_n"], s["mesh_n"])}}
        if s["n_sensors"] == 0:
            attributes["geometry/observation_points"] = {"grid_shape": (s["grid_n"], s["grid_n"])}
        return attributes

    def export_xdmf(self, directory, index, rows):
        """Write ω0 and ω(T) of sample `index` as P1 functions to DIRECTORY/navier_stokes_<index>.xdmf
        (ω0 is the trigonometric interpolant of the stored grid values, exactly the field solved)."""
        n = self.settings["mesh_n"]
        grid = np.asarray(rows["parameters"]).reshape(self.settings["grid_n"], -1)
        fields = []
        for name, values in (("initial_vorticity", refine(grid, n)), ("vorticity", rows["states"])):
            u = fem.function(self.space, name)
            u.x.array[:] = np.asarray(values).ravel()[self.dof_grid]
            fields.append(u)
        Path(directory).mkdir(parents=True, exist_ok=True)
        fem.write_xdmf(Path(directory) / f"navier_stokes_{index:06d}.xdmf", self.mesh, fields)


def combine(A, a, B, b):
    """The PETSc matrix a A + b B (A and B with the same sparsity: no reallocation)."""
    C = A.copy()
    C.scale(a)
    C.axpy(b, B, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
    return C


def velocity_bound(settings):
    """The max|v| bound `check` uses: VELOCITY_STDS prior velocity standard deviations plus the
    forcing's contribution A T / (2π) (a mode of wavenumber 2π√2 and amplitude ≤ √2 A T)."""
    prior = TorusGaussianPrior(settings["prior_tau"], settings["prior_alpha"], settings["prior_scale"])
    return (VELOCITY_STDS * prior.velocity_std(settings["grid_n"])
            + settings["forcing_amplitude"] * settings["final_time"] / (2 * np.pi))


def grid_points(n):
    """The n x n grid of the torus, (n², 2), in C order: row i*n + j is (i/n, j/n)."""
    x = np.arange(n) / n
    return np.stack(np.meshgrid(x, x, indexing="ij"), axis=-1).reshape(-1, 2)
