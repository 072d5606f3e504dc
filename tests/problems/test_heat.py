"""Heat metrics: the relative error of the conductivity κ = e^m beside that of m."""
import numpy as np
import pytest
import torch

from problems.heat import HeatProblem, conductivity_relative_errors, fixed_split, relative_squared_errors
from problems.optimizers import RestartedAdam


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


def test_relative_squared_error_by_hand():
    # row 0: ‖(1, 0) − (1, 1)‖² / ‖(1, 1)‖² = 1/2; row 1: ‖(3, 0) − (1, 0)‖² / ‖(1, 0)‖² = 4
    pred, true = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(relative_squared_errors(pred, true), [0.5, 4.0])


def test_relative_squared_error_of_the_field_is_the_z_ratio_for_orthonormal_modes():
    rng = np.random.default_rng(3)
    E = np.linalg.qr(rng.standard_normal((100, 12)))[0]  # orthonormal columns
    z, z_hat = rng.standard_normal((7, 12)), rng.standard_normal((7, 12))
    field = relative_squared_errors(z_hat @ E.T, z @ E.T)
    np.testing.assert_allclose(field, ((z_hat - z) ** 2).sum(1) / (z ** 2).sum(1), rtol=1e-12)


def test_metric_on_the_dataset_is_the_field_ratio(heat):
    problem, data = heat
    z_true = data.y_test.numpy()
    z_pred = z_true + 0.5 * np.random.default_rng(1).standard_normal(z_true.shape)
    fields = [problem.fields(z, data) for z in (z_pred, z_true)]
    expected = np.mean(((fields[0] - fields[1]) ** 2).sum(1) / (fields[1] ** 2).sum(1))
    assert problem.metrics(torch.as_tensor(z_pred), data)["test_rel_sq"] == pytest.approx(expected, rel=1e-12)
    assert problem.metrics(data.y_test, data)["test_rel_sq"] == 0.0


def test_fixed_split_is_the_sources_rows_or_random_for_small_files():
    settings = HeatProblem.presets["paper"]
    train, val, test = fixed_split(10500, settings)
    np.testing.assert_array_equal(train, np.arange(50))
    np.testing.assert_array_equal(val, np.arange(60, 80))
    np.testing.assert_array_equal(test, np.arange(10000, 10500))
    assert fixed_split(100, settings) is None


def test_restarted_adam_is_the_first_step_of_a_fresh_adam():
    """Every step equals one step of a newly created Adam with Keras' ε (added to sqrt(v) before
    the bias correction, torch adds it after: ε_torch = ε_keras/sqrt(1 − β2))."""
    torch.manual_seed(0)
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    reference = w.detach().clone().requires_grad_(True)
    opt = RestartedAdam([w], lr=1e-2)
    for _ in range(3):
        for p in (w, reference):
            p.grad = None
            ((p ** 3).sum()).backward()
        opt.step()
        fresh = torch.optim.Adam([reference], lr=1e-2, eps=1e-7 / (1 - 0.999) ** 0.5)
        fresh.step()
        torch.testing.assert_close(w, reference, rtol=1e-14, atol=1e-14)
