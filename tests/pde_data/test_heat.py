"""The heat forward model: stored operators reproduce the solver, observations, noise, settings."""
import numpy as np
import pytest
import scipy.sparse
from mpi4py import MPI

from pde_data import fem, priors
from common.errors import ConfigError
from pde_data.heat import ForwardModel, weighted_stiffness_tensor


# the BiLaplacian prior, random sensors, RMS-relative noise and the insulated top edge
BILAPLACIAN = {"prior": "bilaplacian", "sensors": "random", "noise_reference": "rms", "insulated_edge": "top"}


def _rng(index, base_seed=11):
    return np.random.default_rng(np.random.SeedSequence(base_seed, spawn_key=(index,)))


@pytest.fixture(scope="module")
def model():
    return ForwardModel(ForwardModel.settings("smoke", {**BILAPLACIAN, "mesh_n": 12, "n_sensors": 15}))


@pytest.fixture(scope="module")
def static(model):
    return model.static_arrays()


def _sparse(static, name, shape):
    o = "operators/" + name
    coo = static[o + "_values"], (static[o + "_rows"], static[o + "_cols"])
    return scipy.sparse.csr_matrix(coo, shape=shape)


def _stiffness(static, m):
    """K(m) = Σ_k exp(m_k) T_k from the stored COO tensor alone (what a regularizer does)."""
    n = len(m)
    weights = static["operators/stiffness_values"] * np.exp(m[static["operators/stiffness_k"]])
    return scipy.sparse.csr_matrix(
        (weights, (static["operators/stiffness_rows"], static["operators/stiffness_cols"])),
        shape=(n, n))


def test_stored_operators_reproduce_the_stored_state(model, static):
    n = model.n_dofs
    free = np.setdiff1d(np.arange(n), static["operators/dirichlet_dofs"])
    F = static["operators/load"]
    B = _sparse(static, "observation", (model.settings["n_sensors"], n))
    for index in range(3):
        rows = model.solve(index, _rng(index))
        u, m = rows["states"], rows["parameters"]
        residual = _stiffness(static, m) @ u - F
        assert np.linalg.norm(residual[free]) / np.linalg.norm(F) < 1e-10
        np.testing.assert_array_equal(u[static["operators/dirichlet_dofs"]], 0.0)
        np.testing.assert_allclose(B @ u, rows["observations_clean"], rtol=1e-13, atol=1e-14)
        modes, eigenvalues = static["operators/kl_modes"], static["operators/kl_eigenvalues"]
        np.testing.assert_allclose(
            static["operators/prior_mean"] + modes @ (np.sqrt(eigenvalues) * rows["latent"]), m,
            atol=1e-13)


def test_observations_are_the_state_at_the_sensor_points(model, static):
    rows = model.solve(0, _rng(0))
    model.state.x.array[:] = rows["states"]
    evaluator = fem.PointEvaluator(model.space, static["geometry/sensor_points"], MPI.COMM_SELF)
    np.testing.assert_allclose(evaluator.evaluate(model.state), rows["observations_clean"],
                               rtol=1e-12, atol=1e-14)


def test_weighted_stiffness_tensor_sums_to_the_stiffness_matrix(model):
    rows, cols, k, values = weighted_stiffness_tensor(model.space)
    n = model.n_dofs
    summed = scipy.sparse.csr_matrix((values, (rows, cols)), shape=(n, n))  # Σ_k T_k: κ = 1
    reference = priors.stiffness_matrix(model.space)
    assert abs(summed - reference).max() < 1e-12 * abs(reference).max()
    assert len(np.unique(np.stack([rows, cols, k]), axis=1).T) == len(values)


def test_mass_matrix_and_geometry_describe_the_same_mesh(model, static):
    n = model.n_dofs
    mass = _sparse(static, "mass", (n, n))
    assert mass.sum() == pytest.approx(1.0, abs=1e-13)
    points, cells = static["geometry/parameter_points"], static["geometry/cells"]
    corners = points[cells]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    areas = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    assert areas.sum() == pytest.approx(1.0) and len(cells) == 2 * 12**2
    top = np.isclose(points[:, 1], 1.0) & (points[:, 0] > 1e-9) & (points[:, 0] < 1 - 1e-9)
    dirichlet = np.zeros(n, bool)
    dirichlet[static["operators/dirichlet_dofs"]] = True
    assert not dirichlet[top].any() and dirichlet.sum() == 3 * 12 + 1  # three sides, 37 vertices


def test_noise_is_relative_to_the_signal(model):
    """(observations − clean) / (noise_level · RMS(clean)) must be N(0, 1): with 200 × 15
    values the sample variance has standard error sqrt(2/3000) ≈ 0.026; tolerance 0.12."""
    scaled = []
    for index in range(200):
        rows = model.solve(index, _rng(index))
        clean = rows["observations_clean"]
        std = model.settings["noise_level"] * np.sqrt(np.mean(clean**2))
        scaled.append((rows["observations"] - clean) / std)
    scaled = np.concatenate(scaled)
    assert abs(scaled.var() - 1.0) < 0.12 and abs(scaled.mean()) < 0.08


def test_same_seed_same_sample(model):
    first, again, other = model.solve(4, _rng(4)), model.solve(4, _rng(4)), model.solve(5, _rng(5))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.allclose(first["parameters"], other["parameters"])


def test_layout_matches_the_rows(model):
    rows = model.solve(0, _rng(0))
    assert {name: len(row) for name, row in rows.items()} == model.layout()
    assert all(row.dtype == np.float64 for row in rows.values())


def test_larger_conductivity_means_lower_temperature(model):
    rows = model.solve(0, _rng(0))
    model.conductivity.x.array[:] = np.exp(rows["parameters"] + np.log(4.0))
    model.solver.solve(model.state)
    np.testing.assert_allclose(model.state.x.array, rows["states"] / 4, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("override, key", [
    ({"n_modes": 101}, "n_modes"), ({"n_modes": 0}, "n_modes"),
    ({"noise_level": -0.1}, "noise_level"), ({"mesh_n": 0}, "mesh_n"),
    ({"n_sensors": 0}, "n_sensors"), ({"prior_std": 0.0}, "prior_std"),
    ({"prior_correlation_length": "nan"}, "prior_correlation_length"),
    ({"sensor_seed": -1}, "sensor_seed"), ({"mesh_m": 3}, "mesh_m"), ({"mesh_n": "nine"}, "mesh_n"),
    ({"prior": "kl"}, "prior"), ({"noise_reference": "max"}, "noise_reference"),
    ({"insulated_edge": "left"}, "insulated_edge"), ({"mesh_n": 10}, "mesh_n"), ({"n_sensors": 12}, "n_sensors"),
])
def test_invalid_settings_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        ForwardModel.settings("paper", override)


def test_presets_are_the_sources_sizes():
    paper = ForwardModel.settings("paper", {})
    assert (paper["mesh_n"], paper["n_modes"], paper["n_sensors"], paper["noise_level"],
            paper["source"], paper["n_samples"]) == (9, 12, 10, 0.05, 20.0, 10500)
    assert (paper["prior"], paper["sensors"], paper["noise_reference"], paper["insulated_edge"]) == (
        "sources", "sources", "std", "right")
    assert ForwardModel.settings("smoke", {})["n_samples"] == 200
    assert ForwardModel.settings("paper", {**BILAPLACIAN, "mesh_n": "64", "n_modes": "64"})["mesh_n"] == 64


def test_export_xdmf(model, tmp_path):
    rows = model.solve(0, _rng(0))
    model.export_xdmf(tmp_path / "fields", 7, rows)
    text = (tmp_path / "fields" / "heat_000007.xdmf").read_text()
    assert 'Name="m"' in text and 'Name="u"' in text
