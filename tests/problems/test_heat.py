"""Heat metrics: the relative error of the conductivity κ = e^m beside that of m."""
import numpy as np
import pytest
import torch

from problems.heat import HeatProblem, conductivity_relative_errors


@pytest.fixture(scope="module")
def heat(datasets):
    problem = HeatProblem("smoke")
    return problem, problem.load(datasets["heat"])


def test_conductivity_error_by_hand():
    # κ = e^m: row 0 exact; row 1 κ̂ = (2, 1, 1) against κ = (1, 1, 1): ‖(1, 0, 0)‖ / ‖(1, 1, 1)‖ = 1/√3;
    # row 2 κ̂ = (1, 1) against κ = (e, e): ‖(1 − e, 1 − e)‖ / ‖(e, e)‖ = (e − 1)/e
    np.testing.assert_allclose(conductivity_relative_errors(np.zeros((2, 3)), np.zeros((2, 3)))[0], 0.0)
    np.testing.assert_allclose(conductivity_relative_errors(np.array([[np.log(2), 0, 0]]), np.zeros((1, 3))),
                               [1 / np.sqrt(3)])
    np.testing.assert_allclose(conductivity_relative_errors(np.zeros((1, 2)), np.ones((1, 2))), [(np.e - 1) / np.e])


def test_conductivity_metric_zero_at_truth_and_from_the_kl_fields(heat):
    problem, data = heat
    assert problem.metrics(data.y_test, data)["test_rel_l2_conductivity"] == 0.0
    # a wrong prediction: the metric equals the hand formula on m = m̄ + Φ diag(√λ) z from the dataset
    ops = data.info["dataset"].arrays
    z_true = data.y_test.numpy()
    z_pred = z_true + 0.3 * np.random.default_rng(0).standard_normal(z_true.shape)
    mean, scale, modes = (ops["operators/" + k] for k in ("prior_mean", "kl_eigenvalues", "kl_modes"))
    k_pred, k_true = (np.exp(mean + (z * np.sqrt(scale)) @ modes.T) for z in (z_pred, z_true))
    expected = np.mean([np.sqrt(((a - b) ** 2).sum() / (b ** 2).sum()) for a, b in zip(k_pred, k_true)])
    metrics = problem.metrics(torch.as_tensor(z_pred), data)
    assert metrics["test_rel_l2_conductivity"] == pytest.approx(expected, rel=1e-12)
    assert metrics["test_rel_l2"] > 0 and metrics["test_rel_l2"] != pytest.approx(expected)
