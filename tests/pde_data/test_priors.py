"""The BiLaplacian prior: exact mass factor, SPDE draws with the prior covariance, KL modes."""
import numpy as np
import pytest
from mpi4py import MPI

from pde_data import fem, priors


def _space(n):
    return fem.scalar_space(fem.unit_square(MPI.COMM_SELF, n))


@pytest.fixture(scope="module")
def prior():
    return priors.BiLaplacianPrior.from_correlation(_space(6), 0.3, 1.0, mean=0.5, robin=True)


def test_mass_factor_reproduces_the_mass_matrix():
    V = _space(5)
    G = priors.mass_factor(V)
    np.testing.assert_allclose((G @ G.T).toarray(), priors.mass_matrix(V).toarray(), atol=1e-16)


def test_full_kl_expansion_is_the_prior_covariance_with_mass_orthonormal_modes(prior):
    kl = prior.kl(prior.n_dofs)
    C = prior.covariance()
    np.testing.assert_allclose(kl.modes.T @ prior.M @ kl.modes, np.eye(prior.n_dofs), atol=1e-12)
    np.testing.assert_allclose(kl.covariance(), C, atol=1e-12 * np.abs(C).max())
    assert np.all(np.diff(kl.eigenvalues) <= 0) and kl.eigenvalues[-1] > 0


def test_sparse_shift_invert_kl_agrees_with_dense(prior, monkeypatch):
    dense = prior.kl(8)
    monkeypatch.setattr(priors, "DENSE_EIGEN_LIMIT", 0)
    sparse = prior.kl(8)
    np.testing.assert_allclose(sparse.eigenvalues, dense.eigenvalues, rtol=1e-9)
    np.testing.assert_allclose(sparse.modes.T @ prior.M @ sparse.modes, np.eye(8), atol=1e-10)
    # same subspace (modes agree up to rotations inside near-degenerate pairs)
    projection = dense.modes.T @ prior.M @ sparse.modes
    np.testing.assert_allclose(np.linalg.svd(projection, compute_uv=False), 1.0, atol=1e-8)


def test_spde_draws_have_the_prior_covariance(prior):
    """For N independent draws with known mean, E‖S − C‖_F² = (‖C‖_F² + (tr C)²)/N, so the
    relative Frobenius error concentrates at sqrt((1 + (tr C)²/‖C‖_F²)/N); 1.5 times that bound
    still fails for any covariance error above ~ that size (e.g. a lumped mass factor)."""
    n_draws = 20000
    draws = prior.sample(np.random.default_rng(7), n=n_draws) - prior.mean[:, None]
    sample_cov = draws @ draws.T / n_draws
    C = prior.covariance()
    expected = np.sqrt((1 + np.trace(C) ** 2 / np.sum(C**2)) / n_draws)
    error = np.linalg.norm(sample_cov - C) / np.linalg.norm(C)
    assert error < 1.5 * expected, (error, expected)


def test_kl_draws_have_the_truncated_covariance(prior):
    kl = prior.kl(5)
    rng = np.random.default_rng(3)
    n_draws = 20000
    draws = np.array([kl.sample(rng)[1] for _ in range(n_draws)]).T - prior.mean[:, None]
    C = kl.covariance()
    expected = np.sqrt((1 + np.trace(C) ** 2 / np.sum(C**2)) / n_draws)
    assert np.linalg.norm(draws @ draws.T / n_draws - C) / np.linalg.norm(C) < 1.5 * expected


def test_same_seed_same_draw(prior):
    kl = prior.kl(12)
    for draw in (prior.sample, lambda rng: kl.sample(rng)[1]):
        first = draw(np.random.default_rng(np.random.SeedSequence(5, spawn_key=(3,))))
        again = draw(np.random.default_rng(np.random.SeedSequence(5, spawn_key=(3,))))
        other = draw(np.random.default_rng(np.random.SeedSequence(5, spawn_key=(4,))))
        np.testing.assert_array_equal(first, again)
        assert not np.allclose(first, other)


def test_matern_parameters_give_the_requested_variance_and_robin_tames_the_boundary():
    V = _space(32)
    x = fem.dof_coordinates(V)
    centre = np.argmin(np.linalg.norm(x - 0.5, axis=1))
    std = 1.5
    robin = np.diag(priors.BiLaplacianPrior.from_correlation(V, 0.2, std, robin=True).covariance())
    neumann = np.diag(priors.BiLaplacianPrior.from_correlation(V, 0.2, std).covariance())
    assert robin[centre] == pytest.approx(std**2, rel=0.05)
    assert 0.6 * std**2 < robin.min() and robin.max() < 1.2 * std**2
    assert neumann.max() > 3 * std**2  # the corner variance inflation Robin removes


def test_invalid_prior_parameters_are_refused(prior):
    with pytest.raises(ValueError, match="gamma and delta"):
        priors.BiLaplacianPrior(prior.space, gamma=0.0, delta=1.0)
    with pytest.raises(ValueError, match="n_modes"):
        prior.kl(prior.n_dofs + 1)
