"""The wind model's mathematics: exactness on flat ground, divergence and no-penetration over
hills, convergence under refinement, terrain files, settings checks, MPI layouts."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import ufl
from mpi4py import MPI

from pde_data import fem
from common.errors import ConfigError, UserError
from pde_data.generate import sample_rng
from pde_data.terrain import read_asc
from pde_data.wind import ForwardModel
from tests.conftest import REPO, mpirun, run_cli

# a 1 km site with one resolved hill: small meshes already see the asymptotic regime
SMALL_SITE = {"length_x": 1000.0, "length_y": 1000.0, "domain_height": 300.0, "n_hills": 1,
              "hill_height": 60.0, "hill_width": 200.0, "grid_top": 100.0, "n_sensors": 4}


def model(**overrides):
    return ForwardModel(ForwardModel.settings("smoke", overrides), MPI.COMM_SELF)


def ground_rms(m, velocity):
    """RMS over the terrain of the normal component of the UFL vector `velocity` [m/s]."""
    n = ufl.FacetNormal(m.mesh)
    ground = ufl.conditional(ufl.lt(n[2], -1e-6), 1.0, 0.0)  # lateral faces have n_z = 0, top 1
    area = fem.assemble_scalar(fem.form(ground * ufl.ds), MPI.COMM_SELF)
    flux = fem.assemble_scalar(fem.form(ground * ufl.dot(velocity, n) ** 2 * ufl.ds), MPI.COMM_SELF)
    return np.sqrt(flux / area)


def test_flat_terrain_needs_no_correction():
    """On flat ground the log profile u0(z) is horizontal, divergence-free and tangent to the
    ground; so is its P1 interpolant (each tetrahedron spans two node levels), hence λ = 0 up to
    the solver tolerance and u = u0 exactly, whereas hills need an O(1) correction."""
    flat = model(n_hills=0)
    rows = flat.solve(0, sample_rng(0, 0))
    speed = rows["latent"][0]
    assert np.abs(flat.lam.x.array).max() < 1e-9 * speed * 1000.0
    assert np.allclose(flat.u.x.array, flat.u0.x.array, rtol=0, atol=1e-9 * speed)
    assert np.abs(rows["parameters"].reshape(-1, 3)[:, 2]).max() < 1e-9 * speed
    hills = model()
    hills.solve(0, sample_rng(0, 0))
    assert np.abs(hills.lam.x.array).max() > 1.0  # m²/s: the same draw over hills is corrected


def test_hills_divergence_orders_of_magnitude_below_first_guess():
    """Over hills, the discrete divergence −∫ w·∇φ_i/∫φ_i (nodes off the open boundary) of
    u = u0_h + A⁻¹∇λ is below that of u0_h by more than 8 orders of magnitude; the stored value
    agrees with an independent assembly of the form."""
    m = model()
    rows = m.solve(3, sample_rng(0, 3))
    div_u, div_u0 = rows["divergence"]
    assert div_u0 > 1e-4 and div_u < 1e-8 * div_u0
    v = ufl.TestFunction(m.S)
    velocity = m.u0 + ufl.grad(m.lam)  # alpha_h = alpha_v = 1: A = I
    residual = fem.assemble_vector_array(fem.form(-ufl.inner(velocity, ufl.grad(v)) * ufl.dx))
    independent = np.sqrt(np.sum(residual ** 2 * m.divergence_weight) / m.constrained_volume)
    assert independent < 1e-8 * div_u0
    residual0 = fem.assemble_vector_array(fem.form(-ufl.inner(m.u0, ufl.grad(v)) * ufl.dx))
    assert np.isclose(np.sqrt(np.sum(residual0 ** 2 * m.divergence_weight) / m.constrained_volume),
                      div_u0, rtol=1e-12)
    assert rows["iterations"][0] <= 20


def test_normal_velocity_at_terrain_vanishes_under_refinement():
    """A uniform first guess crosses the hill (u0·n ≠ 0 on the ground); the natural condition
    makes u·n → 0 there as the mesh is refined (observed rate about h^0.8), for both the
    finite-element u and the recovered P1 field."""
    fe, recovered, first = [], [], []
    for k in (1, 2, 4):
        m = model(mesh_shape=[8 * k, 8 * k, 4 * k], vertical_grading=1.0,
                  **dict(SMALL_SITE, domain_height=500.0, hill_height=100.0))
        m.u0.x.array.reshape(-1, 3)[:] = [10.0, 0.0, 0.0]
        m.adjust()
        first.append(ground_rms(m, m.u0))
        fe.append(ground_rms(m, m.u0 + ufl.grad(m.lam)))
        recovered.append(ground_rms(m, m.u))
    assert min(first) > 0.5  # m/s
    for errors in (fe, recovered):
        assert errors[0] > errors[1] > errors[2]
        assert errors[2] < 0.4 * first[2]
        assert np.log2(errors[0] / errors[2]) / 2 > 0.5


def test_amg_iterations_bounded_under_refinement():
    """CG + BoomerAMG needs about the same number of iterations as every cell edge is halved."""
    counts = [model(mesh_shape=[6 * k, 6 * k, 4 * k]).solve(0, sample_rng(0, 0))["iterations"][0]
              for k in (1, 2, 4)]
    assert max(counts) <= min(counts) + 3 and max(counts) <= 15


def test_sensor_speed_converges_under_refinement():
    """The speed at every 10 m mast converges: successive differences shrink at least fivefold."""
    speeds = []
    for k in (1, 2, 4):
        m = model(mesh_shape=[6 * k, 6 * k, 4 * k], **SMALL_SITE)
        m.solve_fields(10.0, 30.0, 0.1)
        speeds.append(np.linalg.norm(m.evaluate(m.u)[-4:], axis=1))
    coarse, fine = np.abs(speeds[1] - speeds[0]), np.abs(speeds[2] - speeds[1])
    assert np.all(fine < 0.2 * coarse)
    assert np.all(np.abs(speeds[2] - 10.0) < 1.0)  # U = 10 m/s at 10 m, slightly changed by the hill


ASC = """ncols 4
nrows 3
xllcorner 500000.0
yllcorner 4000000.0
cellsize 100
NODATA_value -9999
1 2 3 4
5 6 7 8
9 10 11 12
"""


def test_read_asc_bilinear_terrain(tmp_path):
    path = tmp_path / "site.asc"
    path.write_text(ASC)
    terrain = read_asc(str(path))
    assert (terrain.length_x, terrain.length_y, terrain.base_elevation) == (400.0, 300.0, 1.0)
    # first line is the north row: h(centre of south-west cell) = 9 - 1
    assert terrain(50.0, 50.0) == pytest.approx(8.0)
    assert terrain(350.0, 250.0) == pytest.approx(3.0)
    assert terrain(100.0, 100.0) == pytest.approx((8 + 9 + 4 + 5) / 4)  # bilinear midpoint
    assert terrain(0.0, 300.0) == pytest.approx(0.0)  # clamped beyond the outer centres
    settings = ForwardModel.settings("smoke", {"terrain_file": str(path), "domain_height": 100.0,
                                               "grid_top": 50.0, "mesh_shape": [4, 3, 2]})
    m = ForwardModel(settings, MPI.COMM_SELF)
    assert m.solve(0, sample_rng(0, 0))["divergence"][0] < 1e-8


@pytest.mark.parametrize("text, reason", [
    (ASC.replace("nrows 3", "nrows 4"), "expected 4 data rows, found 3"),
    (ASC.replace("5 6 7 8", "5 6 7"), "data row 2 has 3 values, expected 4"),
    (ASC.replace("6 7", "6 x"), "not a number"),
    (ASC.replace("cellsize 100\n", ""), "header lacks 'cellsize'"),
    (ASC.replace("10 11", "-9999 11"), "NODATA"),
])
def test_malformed_asc_is_refused_with_one_line(tmp_path, text, reason):
    path = tmp_path / "bad.asc"
    path.write_text(text)
    with pytest.raises(UserError) as error:
        read_asc(str(path))
    message = str(error.value)
    assert reason in message and str(path) in message and "\n" not in message
    with pytest.raises(ConfigError, match="terrain_file"):
        ForwardModel.settings("smoke", {"terrain_file": str(path)})


@pytest.mark.parametrize("key, value", [
    ("mesh_shape", "[0, 4, 4]"), ("grid_shape", "[4, 4]"), ("speed_range", "[5, 2]"),
    ("roughness_range", "[0, 0.1]"), ("alpha_v", "0"), ("vertical_grading", "0.5"),
    ("grid_top", "2000"), ("sensor_height", "-1"), ("solver_rtol", "1"),
])
def test_invalid_settings_are_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        ForwardModel.settings("smoke", {key: value})


def test_rows_match_the_layout_and_the_draws():
    m = model()
    rows = m.solve(5, sample_rng(7, 5))
    assert {k: v.size for k, v in rows.items()} == m.layout()
    speed, direction, roughness = rows["latent"]
    assert 3 <= speed <= 15 and 0 <= direction <= 360 and 0.01 <= roughness <= 0.5
    noise = rows["observations"] - rows["observations_clean"]
    assert 0 < np.abs(noise).max() < 5 * 0.25
    grid = m.static_arrays()["geometry/parameter_points"]
    assert grid.shape == (8 * 8 * 4, 3)
    again = model().solve(5, sample_rng(7, 5))
    assert all(np.array_equal(rows[k], again[k]) for k in rows)


MESH_PARALLEL = """
import sys, numpy as np
from mpi4py import MPI
from pde_data.generate import sample_rng
from pde_data.wind import ForwardModel
m = ForwardModel(ForwardModel.settings("smoke"), MPI.COMM_WORLD)
rows = m.solve(2, sample_rng(0, 2))
if MPI.COMM_WORLD.rank == 1:
    np.savez(sys.argv[1], **rows)
"""


@pytest.mark.mpi
def test_mesh_parallel_agrees_with_serial(tmp_path):
    """Two ranks share one mesh (each point owned once, rows on every rank): the rows equal the
    serial ones up to the solver tolerance."""
    out = tmp_path / "rows.npz"
    subprocess.run(mpirun(2) + [sys.executable, "-c", MESH_PARALLEL, str(out)],
                   cwd=REPO, check=True, timeout=300, capture_output=True)
    parallel = np.load(out)
    serial = model().solve(2, sample_rng(0, 2))
    for key in ("parameters", "observations", "observations_clean", "latent"):
        assert np.allclose(parallel[key], serial[key], rtol=0, atol=1e-7), key
    assert parallel["divergence"][0] < 1e-8 * parallel["divergence"][1]


@pytest.mark.mpi
def test_cli_mesh_and_sample_parallel_agree_with_serial(tmp_path):
    """`--procs-per-sample 2` (mesh-parallel) and 2 sample-parallel ranks write the serial
    file's rows up to solver tolerance (sample-parallel: bit for bit)."""
    files = {}
    for label, nprocs, extra in (("serial", None, ["--xdmf", tmp_path / "xdmf"]), ("samples", 2, []),
                                 ("mesh", 2, ["--procs-per-sample", "2"])):
        files[label] = tmp_path / f"{label}.h5"
        result = run_cli(["generate", "wind", "--preset", "smoke", "--n-samples", "3",
                          "--out", files[label]] + extra, nprocs=nprocs, toy=False)
        assert result.returncode == 0, result.stderr
    with h5py.File(files["serial"]) as f:
        serial = f["parameters"][()]
        assert list(f["geometry/parameter_points"].attrs["grid_shape"]) == [8, 8, 4]
    assert sorted(os.listdir(tmp_path / "xdmf")) == [f"wind_00000{i}.{ext}" for i in range(3)
                                                     for ext in ("h5", "xdmf")]
    with h5py.File(files["samples"]) as f:
        assert np.array_equal(f["parameters"][()], serial)
    with h5py.File(files["mesh"]) as f:
        assert np.allclose(f["parameters"][()], serial, rtol=0, atol=1e-7)
        assert np.all(f["status"][()] == 1)
