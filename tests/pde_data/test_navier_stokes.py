"""Navier–Stokes on the torus: convergence rates (Taylor–Green), invariants, an independent
pseudo-spectral reference, the prior, settings refusals and the dataset through the command line.

Errors are RMS over the mesh grid (for P1 on the uniform periodic mesh: the lumped-mass L² norm of
the nodal error, equivalent to the L² norm), relative to the RMS of the reference.
"""
import h5py
import numpy as np
import pytest

from pde_data import fem
from common.errors import ConfigError, SolverFailure
from pde_data.navier_stokes import ForwardModel, grid_points
from pde_data.periodic import TorusGaussianPrior, refine, wavenumbers
from tests.conftest import run_cli

KAPPA = 2 * np.pi


def model(**overrides):
    return ForwardModel(ForwardModel.settings("smoke", overrides))


def grid(n):
    x = np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")


def taylor_green(n, amplitude, viscosity, t):
    """ω = A 2κ cos(κx) cos(κy) e^{−2κ²νt}: an exact solution without forcing (v·∇ω = 0)."""
    X, Y = grid(n)
    return amplitude * 2 * KAPPA * np.cos(KAPPA * X) * np.cos(KAPPA * Y) * np.exp(-2 * KAPPA ** 2 * viscosity * t)


def rel_rms(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2)))


def rate(hs, errors):
    return float(np.polyfit(np.log(hs), np.log(errors), 1)[0])


def spectral_solution(omega0, viscosity, forcing_amplitude, final_time, dt):
    """Independent reference: pseudo-spectral (FFT) solution of the same problem on the grid of
    omega0 (2/3-dealiased advection, integrating-factor RK4 in time, exact diffusion)."""
    n = omega0.shape[0]
    k1, k2 = wavenumbers(n)
    dx, dy = 2j * np.pi * k1, 2j * np.pi * k2
    laplace = -4 * np.pi ** 2 * (k1 ** 2 + k2 ** 2)
    inverse = np.zeros_like(laplace)
    inverse[laplace < 0] = 1.0 / laplace[laplace < 0]
    keep = np.maximum(np.abs(k1), np.abs(k2)) < n / 3
    X, Y = grid(n)
    f_hat = np.fft.fft2(forcing_amplitude * (np.sin(2 * np.pi * (X + Y)) + np.cos(2 * np.pi * (X + Y))))

    def rhs(w_hat):
        psi_hat = -inverse * w_hat
        u, v = np.fft.ifft2(dy * psi_hat).real, -np.fft.ifft2(dx * psi_hat).real
        wx, wy = np.fft.ifft2(dx * w_hat).real, np.fft.ifft2(dy * w_hat).real
        return f_hat - keep * np.fft.fft2(u * wx + v * wy)

    w = np.fft.fft2(omega0)
    half = np.exp(viscosity * laplace * dt / 2)
    full = half ** 2
    for _ in range(round(final_time / dt)):
        a = rhs(w)
        b = rhs(half * (w + dt / 2 * a))
        c = rhs(half * w + dt / 2 * b)
        d = rhs(full * w + dt * half * c)
        w = full * w + dt / 6 * (full * a + 2 * half * (b + c) + d)
    return np.fft.ifft2(w).real


def enstrophy(m, omega):
    """½ ∫ ω_h² dx of the P1 function with grid values `omega` (consistent mass matrix)."""
    m.omega.x.array[:] = omega.ravel()[m.dof_grid]
    m.omega.x.array[fem.slave_dofs(m.constraint)] = 0.0  # M counts each torus dof once
    x = fem.petsc_vector(m.omega)
    y = x.duplicate()
    m.M.mult(x, y)
    return 0.5 * x.dot(y)


# --- convergence ---------------------------------------------------------------------------------

def test_taylor_green_converges_at_second_order_in_space():
    nu, T = 0.01, 0.5
    ns = [8, 16, 32]
    errors = [rel_rms(model(mesh_n=n, grid_n=n, dt=0.005, final_time=T, viscosity=nu,
                            forcing_amplitude=0.0, cfl=0.3).evolve(taylor_green(n, 1, nu, 0)),
                      taylor_green(n, 1, nu, T)) for n in ns]
    assert errors[-1] < 0.03
    assert 1.8 < rate(1.0 / np.array(ns), errors) < 2.3, errors


def test_taylor_green_converges_at_second_order_in_time():
    """Time error isolated at a fixed mesh: against the same discretization with a tiny Δt."""
    nu, T, n = 0.05, 0.5, 32
    w0 = taylor_green(n, 0.1, nu, 0)

    def run(dt):
        return model(mesh_n=n, grid_n=n, dt=dt, final_time=T, viscosity=nu,
                     forcing_amplitude=0.0, cfl=0.3).evolve(w0)

    reference = run(T / 640)
    dts = [0.05, 0.025, 0.0125]
    errors = [rel_rms(run(dt), reference) for dt in dts]
    assert 1.9 < rate(dts, errors) < 2.2, errors
    assert rel_rms(reference, taylor_green(n, 0.1, nu, T)) < 0.03  # and it is the right solution


def test_random_sample_agrees_with_pseudo_spectral_solution():
    """Strong flow (prior scaled up 100x: max|v| ≈ 0.2, advection matters) with the default
    forcing and viscosity: P1 error O(h²) against an independent FFT solver."""
    scale = 100 * 7 ** 1.5
    omega0 = TorusGaussianPrior(7.0, 2.5, scale).sample_grid(np.random.default_rng(1), 32)
    reference = spectral_solution(refine(omega0, 64), 1e-3, 0.1, 1.0, 0.005)
    errors = []
    for n, dt in ((32, 0.02), (64, 0.01)):
        state = model(mesh_n=n, grid_n=32, dt=dt, prior_scale=scale, cfl=0.3).evolve(refine(omega0, n))
        errors.append(rel_rms(state, reference[::64 // n, ::64 // n]))
    assert errors[1] < 0.01 and errors[0] / errors[1] > 3.0, errors


# --- invariants ----------------------------------------------------------------------------------

def test_mean_vorticity_stays_zero_with_forcing():
    m = model(mesh_n=32, grid_n=16, prior_scale=100 * 7 ** 1.5, cfl=0.3)
    rows = m.solve(0, np.random.default_rng(0))
    assert abs(np.mean(rows["parameters"])) < 1e-15
    assert abs(np.mean(rows["states"])) < 1e-12 * np.max(np.abs(rows["states"]))


def test_solution_is_periodic_translation_equivariant():
    """Shifting ω0 by whole cells across the periodic boundary shifts ω(T) the same way: only true
    if the two sides of the square are coupled as one torus."""
    m = model(mesh_n=16, grid_n=16, forcing_amplitude=0.0, prior_scale=100 * 7 ** 1.5)
    omega0 = refine(m.prior.sample_grid(np.random.default_rng(2), 16), 16)
    shift = (5, 11)
    moved = m.evolve(np.roll(omega0, shift, axis=(0, 1)))
    direct = np.roll(m.evolve(omega0), shift, axis=(0, 1))
    assert np.max(np.abs(moved - direct)) < 1e-10 * np.max(np.abs(direct))


def test_inviscid_enstrophy_conserved_up_to_time_stepping_error():
    """ν = 0, f = 0: the Galerkin advection is skew, so ½∫ω² changes only by AB2's error, which
    shrinks faster than Δt² when Δt is halved."""
    omega0 = refine(TorusGaussianPrior(7.0, 2.5, 1e4 * 7 ** 1.5).sample_grid(np.random.default_rng(3), 16), 32)
    drifts = []
    for dt in (0.005, 0.0025):
        m = model(mesh_n=32, grid_n=16, dt=dt, viscosity=0.0, forcing_amplitude=0.0, cfl=0.3)
        z0 = enstrophy(m, omega0)
        drifts.append(abs(enstrophy(m, m.evolve(omega0)) / z0 - 1))
    assert drifts[0] < 2e-3 and drifts[1] < drifts[0] / 4, drifts
    viscous = model(mesh_n=32, grid_n=16, dt=0.0025, viscosity=1e-3, forcing_amplitude=0.0, cfl=0.3)
    assert enstrophy(viscous, viscous.evolve(omega0)) < z0 * (1 - 10 * drifts[1])  # ν dissipates


def test_courant_violation_during_run_is_a_solver_failure():
    m = model(mesh_n=16, grid_n=16, forcing_amplitude=0.0)
    with pytest.raises(SolverFailure, match="Courant number"):
        m.evolve(taylor_green(16, 100, 1e-3, 0))


def test_sparse_sensors_observe_the_state_at_their_points():
    m = model(mesh_n=16, grid_n=8, n_sensors=10)
    rows = m.solve(0, np.random.default_rng(5))
    points = m.static_arrays()["geometry/observation_points"]
    index = np.rint(points * 16).astype(int)
    state = rows["states"].reshape(16, 16)
    assert m.layout()["observations"] == len(points) == 10
    assert np.array_equal(rows["observations_clean"], state[index[:, 0], index[:, 1]])


# --- prior ----------------------------------------------------------------------------------------

def test_prior_variance_matches_the_covariance_operator():
    prior = TorusGaussianPrior(7.0, 2.5, 7 ** 1.5)
    rng = np.random.default_rng(4)
    samples = np.array([prior.sample_grid(rng, 16) for _ in range(4000)])
    expected = prior.eigenvalues(16).sum()  # pointwise variance Σ λ_k
    assert abs(samples.var(axis=0).mean() / expected - 1) < 0.05
    assert np.allclose(refine(samples[0], 64)[::4, ::4], samples[0], atol=1e-14)


# --- settings and the dataset ----------------------------------------------------------------------

@pytest.mark.parametrize("key,value", [("viscosity", -1.0), ("final_time", 0.0), ("dt", 0.0),
                                       ("dt", 0.3), ("grid_n", 5), ("prior_alpha", 1.0)])
def test_bad_settings_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key) as error:
        ForwardModel.settings("smoke", {key: value})
    assert "\n" not in str(error.value)


def test_cli_refuses_negative_viscosity_in_one_line(tmp_path):
    result = run_cli(["generate", "navier_stokes", "--preset", "smoke", "--out", tmp_path / "x.h5",
                      "viscosity=-1"], toy=False)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "viscosity" in result.stderr
    assert not (tmp_path / "x.h5").exists()


def test_smoke_dataset_layout_and_contents(tmp_path):
    out = tmp_path / "ns.h5"
    result = run_cli(["generate", "navier_stokes", "--preset", "smoke", "--n-samples", "3",
                      "--out", out, "--xdmf", tmp_path / "xdmf", "--xdmf-count", "1"], toy=False)
    assert result.returncode == 0, result.stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["viscosity"] == 1e-3 and f.attrs["final_time"] == 1.0
        assert tuple(f["geometry/parameter_points"].attrs["grid_shape"]) == (16, 16)
        assert np.array_equal(f["geometry/parameter_points"][()], grid_points(16))
        assert np.all(f["status"][()] == 1)
        states, clean = f["states"][()], f["observations_clean"][()]
        assert np.array_equal(clean, states)  # smoke: grid = mesh grid, all points observed
        noise = f["observations"][()] - clean
        assert 0.5 < np.std(noise) / (0.01 * np.sqrt(np.mean(clean ** 2))) < 1.5
    assert (tmp_path / "xdmf" / "navier_stokes_000000.xdmf").exists()


@pytest.mark.mpi
def test_file_identical_for_one_and_two_processes(tmp_path):
    files = []
    for nprocs in (1, 2):
        out = tmp_path / f"ns{nprocs}.h5"
        result = run_cli(["generate", "navier_stokes", "--preset", "smoke", "--n-samples", "5",
                          "--out", out], nprocs=nprocs, toy=False)
        assert result.returncode == 0, result.stderr
        files.append(out)
    with h5py.File(files[0], "r") as a, h5py.File(files[1], "r") as b:
        for name in ("parameters", "observations", "observations_clean", "states", "status"):
            assert np.array_equal(a[name][()], b[name][()]), name
